"""The generation (`generate_until`) variant of a loglikelihood task, for error messages.

Our tasks name the two protocols in two ways: the seed tasks mark the loglikelihood one with
`_mc` (`spoken_mmlu_seed_mc` -> `spoken_mmlu_seed`), the others insert `_gen` into the
generation one (`spoken_mmlu_anatomy` -> `spoken_mmlu_gen_anatomy`, `timbre_range` ->
`timbre_range_gen`). The task folder's file names are the task names, so a glob answers.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _our_task_names() -> frozenset[str]:
    from lm_eval_audio.files import tasks_dir

    return frozenset(p.stem for p in tasks_dir().rglob("*.yaml"))


def generation_variants(tasks: list[str]) -> dict[str, str]:
    """Map each task that has a generation variant among our tasks to that variant's name."""
    known = _our_task_names()
    out = {}
    for task in tasks:
        parts = task.split("_")
        candidates = [task.removesuffix("_mc")] if task.endswith("_mc") else []
        candidates += ["_".join(parts[:i] + ["gen"] + parts[i:]) for i in range(len(parts), 0, -1)]
        found = [c for c in candidates if c in known and c != task]
        if found:
            out[task] = found[0]
    return out
