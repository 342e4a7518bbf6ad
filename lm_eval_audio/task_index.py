"""The lm-eval `TaskManager` a run of ours builds: our task folder (and the caller's) first,
lm-eval's own ~15k task files only when a task named is not there. Indexing lm-eval's files
costs about 12 s of CPU per `TaskManager`, more than most of the demo's experiments."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lm_eval_audio.files import tasks_dir

logger = logging.getLogger(__name__)

# A group member not in the index whose keys (its own or its groups') include one of these is a
# task defined inline, with data of its own.
INLINE_TASK_KEYS = frozenset({"dataset_path", "include", "class", "custom_dataset"})


def task_manager(tasks: list[str], metadata: dict[str, Any] | None = None, include_path: list[str] | None = None):
    """A TaskManager that resolves every spec in `tasks` as lm-eval's CLI would: names (tasks,
    groups, tags) and YAML file paths, with every member of a group they name. `metadata` reaches
    the task loaders (data locations), as lm-eval's CLI passes model_args and --metadata; folders
    in `include_path` come after ours, so a task of theirs overrides one of ours of the same name."""
    from lm_eval.tasks import TaskManager

    folders = [str(tasks_dir()), *(str(p) for p in include_path or [])]
    tm = TaskManager(include_defaults=False, include_path=folders, metadata=metadata or None)
    missing = unresolved(tasks, tm.task_index, inline_ok=False)
    if missing:
        logger.info("%s not among our tasks; indexing lm-eval's own tasks too", ", ".join(missing))
        # Ours stay in the path: they load even where the plugin's hook stood down.
        tm = TaskManager(include_path=folders, metadata=metadata or None)
        still = unresolved(tasks, tm.task_index, inline_ok=True)
        if still:
            raise ValueError(f"unknown lm-eval task(s) {still} (include_path={folders[1:]})")
    return tm


def unresolved(specs: list[str], index: dict, *, inline_ok: bool = True) -> list[str]:
    """The names among `specs` (task, group or tag names, or YAML paths), and among the members of
    the groups they name, recursively, that `index` does not hold. lm-eval builds a group member
    it does not know as a task defined inline, from the keys the member and its groups give it;
    with `inline_ok`, a member whose keys define a task (`INLINE_TASK_KEYS`) counts as such,
    without it every unknown member is reported (on our index alone it may be one of lm-eval's:
    only the full index tells a reference from a definition)."""
    from lm_eval.tasks._factory import GROUP_FIELD_NAMES
    from lm_eval.tasks._index import Kind, TaskIndex
    from lm_eval.tasks._yaml_loader import load_yaml

    missing: list[str] = []
    seen: set[str] = set()

    def members(cfg: dict, inherited: frozenset) -> None:
        keys = inherited | {k for k in cfg if k not in GROUP_FIELD_NAMES}  # handed down to each member
        items = cfg.get("task")
        for item in items if isinstance(items, list) else []:  # lm-eval ignores a group's non-list `task`
            if isinstance(item, str):
                member(item, keys)
            elif isinstance(item, dict) and "group" in item:
                if item["group"] in index:
                    name(item["group"])
                else:
                    members(item, keys)  # a group defined inline
            elif isinstance(item, dict) and "task" in item:
                member(item["task"], keys | frozenset(item))

    def member(spec: str, keys: frozenset) -> None:
        if spec in index:
            name(spec)
        elif not (inline_ok and INLINE_TASK_KEYS & keys) and spec not in missing:
            missing.append(spec)

    def name(spec: str, *, top: bool = False) -> None:
        if spec in seen:
            return
        seen.add(spec)
        entry = index.get(spec)
        if entry is None and top and Path(spec).expanduser().is_file():  # lm-eval reads only a spec as a path
            entry = TaskIndex.entry_from_path(Path(spec))
            if entry is not None and entry.kind == Kind.GROUP:
                entry.cfg = load_yaml(entry.yaml_path, resolve_func=False)
        if entry is None:
            missing.append(spec)
        elif entry.kind == Kind.GROUP:
            members(entry.cfg or {}, frozenset())

    for spec in specs:
        name(spec, top=True)
    return missing
