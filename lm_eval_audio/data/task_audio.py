"""The `doc_to_audio` functions of this package's tasks refuse few-shot runs.

lm-eval gives only the scored document its audio: with `num_fewshot` > 0 every example would be
its text without its clip, a different task than the one named. `refuses_fewshot` marks a task's
audio function so that, bound to its task as the task loads (its `for_task`, which the start-up
hook calls, as for a spoken twin's), it raises on the first document of a few-shot run. Only
the tasks that use it refuse: lm-eval's own audio tasks keep lm-eval's behaviour.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

AudioFunction = Callable[[dict], list[dict]]


def fewshot_refusal(task_name: str, shots: int) -> ValueError:
    """The error a task with audio gives for `num_fewshot` = `shots` > 0."""
    return ValueError(
        f"{task_name}: num_fewshot={shots} on a task with audio: lm-eval gives only the scored document its "
        f"audio, so the {shots} example(s) would be text without their clips. Run it with --num_fewshot 0")


def refuses_fewshot(fn: AudioFunction) -> AudioFunction:
    """Mark `fn` (a task's `doc_to_audio`) to refuse `num_fewshot` > 0 once bound to its task."""

    def for_task(task: Any) -> tuple[AudioFunction, dict]:
        config = task.config

        @functools.wraps(fn)
        def doc_to_audio(doc: dict) -> list[dict]:
            shots = config.num_fewshot or 0  # read per call: lm-eval sets it after the task loads
            if shots > 0:
                raise fewshot_refusal(config.task, shots)
            return fn(doc)

        del doc_to_audio.for_task  # functools.wraps copied it: the bound function is final
        return doc_to_audio, {}

    fn.for_task = for_task
    return fn
