"""The lm-eval `TaskManager` a run of ours builds: our task folder (and the caller's) first,
lm-eval's own ~15k task files only when a task named is not there. Indexing lm-eval's files
costs about 12 s of CPU per `TaskManager`, more than most of the demo's experiments."""

from __future__ import annotations

import logging
from typing import Any

from lm_eval_audio.files import tasks_dir

logger = logging.getLogger(__name__)


def task_manager(tasks: list[str], metadata: dict[str, Any] | None = None, include_path: list[str] | None = None):
    """A TaskManager that knows every name in `tasks` (groups included). `metadata` reaches the
    task loaders (data locations), as lm-eval's CLI passes model_args and --metadata; folders in
    `include_path` come after ours, so a task of theirs overrides one of ours of the same name."""
    from lm_eval.tasks import TaskManager

    extra = [str(p) for p in include_path or []]
    tm = TaskManager(include_defaults=False, include_path=[str(tasks_dir()), *extra], metadata=metadata or None)
    missing = [t for t in tasks if t not in tm.all_tasks]
    if missing:
        logger.info("tasks %s are not ours; indexing lm-eval's own tasks too", missing)
        tm = TaskManager(include_path=extra or None, metadata=metadata or None)
        still = [t for t in tasks if t not in tm.all_tasks]
        if still:
            raise ValueError(f"unknown lm-eval task(s) {still} (include_path={extra})")
    return tm
