"""What identifies a row of the report: the model configuration a run evaluated.

A row is (lm-eval model backend, checkpoint, adapter, mode) plus any other model_args that can
change scores. Arguments that only decide how the work is executed (device, batch size, ...)
are left out, so the same configuration run on two machines is one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

# model_args that change how a run executes but not what it computes.
EXECUTION_ONLY_ARGS = frozenset({
    "device", "batch_size", "max_batch_size", "parallelize", "device_map", "trust_remote_code",
    "num_workers", "compute_type_threads", "cpu_threads", "use_fast_tokenizer",
})
CHECKPOINT_ARGS = ("pretrained", "model", "path", "engine")
ADAPTER_ARGS = ("peft", "lora", "adapter", "delta")


@dataclass(frozen=True)
class ModelConfig:
    """One model configuration: the identity of a report row."""

    model: str  # lm-eval backend name: hf, qwen2audio, whisper, ...
    checkpoint: str
    adapter: str | None
    mode: str | None
    other_args: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_lm_eval(cls, model: str, model_args: Any) -> "ModelConfig":
        """Build from a results file's `config.model` and `config.model_args` (dict or string)."""
        if model_args is None:
            args: dict[str, Any] = {}
        elif isinstance(model_args, str):
            from lm_eval.utils import simple_parse_args_string

            args = simple_parse_args_string(model_args)
        elif isinstance(model_args, dict):
            args = dict(model_args)
        else:
            raise ValueError(f"model_args of {model!r} is neither a string nor a mapping: {model_args!r}")
        checkpoint = next((str(args.pop(k)) for k in CHECKPOINT_ARGS if args.get(k) is not None), "")
        adapter = next((str(args.pop(k)) for k in ADAPTER_ARGS if args.get(k) not in (None, "")), None)
        mode = args.pop("mode", None)
        other = tuple(sorted((k, str(v)) for k, v in args.items() if k not in EXECUTION_ONLY_ARGS))
        return cls(model=str(model), checkpoint=checkpoint, adapter=adapter,
                   mode=None if mode is None else str(mode), other_args=other)

    @property
    def sort_key(self) -> tuple:
        """Rows of one checkpoint together; base before adapters; modes alphabetically."""
        return (self.checkpoint, self.model, self.adapter or "", self.mode or "", self.other_args)

    @property
    def base(self) -> "ModelConfig":
        """The same configuration without its adapter (the 'before' of a before/after view)."""
        return ModelConfig(self.model, self.checkpoint, None, self.mode, self.other_args)

    @property
    def model_key(self) -> tuple:
        """The model itself, ignoring mode: text and spoken runs of one model share this key."""
        return (self.model, self.checkpoint, self.adapter, self.other_args)

    @staticmethod
    def short(path: str | None) -> str:
        """A readable name for a checkpoint or adapter: hub ids stay, local paths keep their last part."""
        if not path:
            return "-"
        parts = PurePath(path).parts
        if path.startswith(("/", ".", "~")) or len(parts) > 2:
            return parts[-1] if parts else path
        return path

    @property
    def label(self) -> str:
        """One-line name for tables and plots."""
        s = f"{self.model}:{self.short(self.checkpoint)}"
        if self.adapter:
            s += f" +{self.short(self.adapter)}"
        if self.mode:
            s += f" [{self.mode}]"
        if self.other_args:
            s += " (" + ",".join(f"{k}={v}" for k, v in self.other_args) + ")"
        return s
