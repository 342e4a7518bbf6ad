"""What an adapter's training was, recorded with every run that scores it.

A run with `peft=DIR` records the adapter's trainer state (`trainer_state.json`, written by
transformers' Trainer into every checkpoint, by our finetune module into its final adapter and
its per-step snapshots, and by ms-swift into its `checkpoint-N` folders): the step it stopped
at, the run's planned steps and epochs, and the logged training loss. When the adapter is one
step of a longer run (`RUN/steps/checkpoint-N` or `RUN/checkpoint-N`) the whole run's loss log
is recorded beside it, so the report can draw the curve and mark the step that was scored.
Results files then carry it, and the report needs no access to the adapter folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME
SNAPSHOTS_DIR = "steps"  # the finetune module keeps step N's adapter in RUN/steps/checkpoint-N


def adapter_at_step(run_dir: str | Path, step: int) -> Path:
    """The adapter of `step` in a training run's folder: the finetune module's snapshot
    (`steps/checkpoint-N`) or a checkpoint of the run itself (`checkpoint-N`, as transformers'
    Trainer and ms-swift name them)."""
    out = Path(run_dir).expanduser()
    candidates = [out / SNAPSHOTS_DIR / f"checkpoint-{step}", out / f"checkpoint-{step}"]
    for c in candidates:
        if (c / "adapter_config.json").is_file():
            return c
    raise FileNotFoundError(f"no adapter of step {step} in {out}: looked for {' and '.join(map(str, candidates))} "
                            f"(the finetune module keeps the steps its training.adapter_snapshots names)")


def _read_state(folder: Path) -> dict | None:
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        logger.warning("adapter training log %s is unreadable (%s); not recorded", path, e)
        return None
    return state if isinstance(state, dict) else None


def _loss_log(state: dict) -> list[list[float]]:
    """[[step, loss], ...] of the training-loss entries in a trainer state's log."""
    out = []
    for entry in state.get("log_history") or []:
        if isinstance(entry, dict) and isinstance(entry.get("loss"), (int, float)) and "step" in entry:
            out.append([int(entry["step"]), float(entry["loss"])])
    return out


def adapter_training(peft: str | None) -> dict[str, Any] | None:
    """The adapter's step, epoch and loss log (and its run's), or None without a trainer state."""
    if not peft:
        return None
    folder = Path(peft).expanduser()
    state = _read_state(folder) if folder.is_dir() else None
    if state is None:
        return None
    record: dict[str, Any] = {
        "step": state.get("global_step"),
        "epoch": state.get("epoch"),
        "max_steps": state.get("max_steps"),
        "num_train_epochs": state.get("num_train_epochs"),
        "loss_log": _loss_log(state),
    }
    for run_dir in (folder.parent.parent, folder.parent) if folder.name.startswith("checkpoint-") else ():
        run = _read_state(run_dir)
        if run is not None and (run.get("global_step") or 0) > (record["step"] or 0):
            record["run"] = {"dir": str(run_dir), "step": run.get("global_step"), "loss_log": _loss_log(run)}
            break
    return record
