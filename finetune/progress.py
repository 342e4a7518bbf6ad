"""Training progress through logging and one labelled bar, never raw dicts on stdout.

transformers' `ProgressCallback` writes every log dict (`{'loss': '24.17', ...}`) to stdout with
`tqdm.write`; `LoggedProgress` replaces it: one bar "training adapter (N steps)" whose postfix
shows the loss, and each logged step as a logging record (INFO) with its numbers named.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class LoggedProgress(TrainerCallback):
    """A labelled training bar with the latest loss, and the trainer's logs through `logging`."""

    def __init__(self, label: str = "training adapter") -> None:
        self.label = label
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step",
                            desc=f"{self.label} ({state.max_steps} steps)", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        logs = {k: v for k, v in logs.items() if k != "total_flos"}
        if self.bar is not None and "loss" in logs:
            self.bar.set_postfix(loss=_number(logs["loss"]), refresh=False)
        if "train_runtime" in logs:  # the trainer's closing summary
            logger.info("%s done: %d steps in %.1f s, mean loss %s", self.label, state.global_step,
                        logs["train_runtime"], _number(logs.get("train_loss")))
            return
        logger.info("%s: step %d/%d, %s", self.label, state.global_step, state.max_steps,
                    ", ".join(f"{k.replace('_', ' ')} {_number(v)}" for k, v in logs.items()))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
