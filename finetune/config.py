"""What a fine-tuning run is: plain dataclasses, loaded from YAML and command-line overrides.

Mechanism lives elsewhere (`data`, `collate`, `modeling`, `train`, `evaluate`); this module only
describes and validates. A config file has the sections `model`, `lora`, `data`, `training` and
`evaluation`; every key is a field below, and an unknown key is an error that names it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Projections of the Qwen2 language model. The audio encoder has `q_proj`/`k_proj`/`v_proj`
# layers too, so targets are a regex anchored on the tower's module path (PEFT fullmatches a
# string target against each module name), never a bare list of names.
LM_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
ENCODER_TARGETS = r".*audio_tower\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|fc1|fc2)"

DTYPES = ("float32", "bfloat16", "float16")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")


@dataclass
class ModelConfig:
    """The base checkpoint."""

    pretrained: str = "Qwen/Qwen2-Audio-7B-Instruct"
    dtype: str = "float32"
    revision: str | None = None


@dataclass
class LoraConfigSection:
    """LoRA settings. `target_modules`: a regex (fullmatched against module paths) or a list of
    module names/suffixes, as PEFT reads them; `modules_to_save`: modules trained in full and
    saved with the adapter (e.g. `multi_modal_projector`, `conv1`, `conv2`, `audio_tower`)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: str | list[str] = LM_TARGETS
    modules_to_save: list[str] = field(default_factory=list)
    bias: str = "none"


@dataclass
class DataConfig:
    """Training data: a harness task's split rendered by the task itself, or a JSONL file.

    `task` + `split`: lm-eval task name (our tasks are indexed automatically; more folders via
    `include_path`). `jsonl`: conversations in the `messages` + `audios` layout (ms-swift,
    LLaMA-Factory); relative audio paths are read against the file's folder. `mode`,
    `apply_chat_template` and `system_instruction` mean what they mean to the harness and to
    the `qwen2audio` model, so training sees exactly the prompt that evaluation will.
    `metadata` reaches the task's loader as lm-eval's `--metadata` does (data locations, e.g.
    `{timbre_range_source: synth}`), in training and in the end-of-training evaluation.
    """

    task: str | None = None
    split: str = "train"
    include_path: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    jsonl: str | None = None
    mode: str = "auto"
    apply_chat_template: bool = False
    system_instruction: str | None = None
    limit: int | None = None
    max_audio_seconds: float = 30.0


@dataclass
class TrainingConfig:
    """Optimisation and checkpointing. `max_steps` > 0 overrides `epochs`. `resume`: `auto`
    continues from the newest checkpoint in `output_dir` if there is one; `never` refuses to
    write into a folder that already holds checkpoints; or a checkpoint folder to resume from.
    `adapter_snapshots`: steps whose adapter is kept (weights and trainer state, no optimizer) in
    `output_dir/steps/checkpoint-N`, whatever the rotation of `save_steps` checkpoints deletes."""

    output_dir: str = "finetune-out"
    learning_rate: float = 1e-4
    lr_scheduler: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    seed: int = 0
    save_steps: int = 100
    save_total_limit: int | None = 2
    logging_steps: int = 10
    dataloader_workers: int = 0
    resume: str = "auto"
    # Adapter-only snapshots kept beside the rotating checkpoints, in `output_dir/steps/checkpoint-N`:
    # "every" step (as the seed's ms-swift run kept them) or a list of steps.
    adapter_snapshots: str | list[int] = field(default_factory=list)


@dataclass
class EvaluationConfig:
    """End-of-training evaluation through the harness itself (`lm_eval.simple_evaluate` with the
    `qwen2audio` model and the adapter just written), so its numbers are the harness's numbers.
    `tasks` defaults to the training task; empty with JSONL data means no evaluation."""

    enabled: bool = True
    tasks: list[str] = field(default_factory=list)
    limit: int | None = None
    batch_size: int = 16
    evaluate_base: bool = False


@dataclass
class FinetuneConfig:
    """A whole run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfigSection = field(default_factory=LoraConfigSection)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def validate(self) -> FinetuneConfig:
        """Check values that would otherwise fail late (or silently); returns self."""
        d, t, l = self.data, self.training, self.lora
        if bool(d.task) == bool(d.jsonl):
            raise ValueError("config: set exactly one of data.task and data.jsonl")
        if d.mode not in ("auto", "text", "audio"):
            raise ValueError(f"config: data.mode must be auto, text or audio, got {d.mode!r}")
        if self.model.dtype not in DTYPES:
            raise ValueError(f"config: model.dtype must be one of {DTYPES}, got {self.model.dtype!r}")
        if t.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"config: training.lr_scheduler must be one of {SCHEDULERS}, got {t.lr_scheduler!r}")
        for name in ("batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            if getattr(t, name) < 1:
                raise ValueError(f"config: training.{name} must be >= 1, got {getattr(t, name)}")
        if t.max_steps <= 0 and t.epochs <= 0:
            raise ValueError("config: set training.max_steps > 0 or training.epochs > 0")
        if l.r < 1 or l.alpha <= 0 or not 0 <= l.dropout < 1:
            raise ValueError(f"config: bad LoRA sizes r={l.r}, alpha={l.alpha}, dropout={l.dropout}")
        if l.target_modules in ("all-linear", ["all-linear"]):
            raise ValueError(
                "config: lora.target_modules='all-linear' also adapts the audio encoder and the projector; "
                "name the targets with a regex (see finetune.config.LM_TARGETS / ENCODER_TARGETS)"
            )
        if isinstance(l.target_modules, str):
            try:
                re.compile(l.target_modules)
            except re.error as e:
                raise ValueError(f"config: lora.target_modules is not a valid regex: {e}") from e
        snaps = t.adapter_snapshots
        if snaps != "every" and not (isinstance(snaps, list) and all(isinstance(n, int) and n >= 1 for n in snaps)):
            raise ValueError(f"config: training.adapter_snapshots must be 'every' or a list of steps >= 1, got {snaps!r}")
        if t.resume not in ("auto", "never") and not Path(t.resume).is_dir():
            raise ValueError(f"config: training.resume must be auto, never or a checkpoint folder; {t.resume!r} is none")
        return self

    def to_dict(self) -> dict:
        """Plain nested dict (what the run writes as `finetune_config.yaml`)."""
        return dataclasses.asdict(self)


def _build(cls, values: Any, where: str):
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ValueError(f"config: section {where!r} must be a mapping, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"config: unknown key(s) {', '.join(where + '.' + k for k in unknown)}; "
            f"valid keys in {where}: {', '.join(names)}"
        )
    return cls(**values)


_SECTIONS = {
    "model": ModelConfig,
    "lora": LoraConfigSection,
    "data": DataConfig,
    "training": TrainingConfig,
    "evaluation": EvaluationConfig,
}


def config_from_dict(values: dict) -> FinetuneConfig:
    """Build a FinetuneConfig from nested dicts; unknown sections or keys raise naming them."""
    values = values or {}
    unknown = sorted(set(values) - set(_SECTIONS))
    if unknown:
        raise ValueError(f"config: unknown section(s) {', '.join(unknown)}; valid: {', '.join(_SECTIONS)}")
    return FinetuneConfig(**{name: _build(cls, values.get(name), name) for name, cls in _SECTIONS.items()})


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Read a YAML config (optional), apply dotted-key overrides (`training.learning_rate`), validate.

    Relative paths in the file (`data.jsonl`, `data.include_path`) are read against the file's
    folder, so a config works from any working directory.
    """
    values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        values = yaml.safe_load(p.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{p}: a finetune config must be a mapping of sections")
        data = values.get("data") or {}
        if isinstance(data, dict):
            if data.get("jsonl"):
                data["jsonl"] = str((p.parent / data["jsonl"]).resolve())
            if data.get("include_path"):
                data["include_path"] = [str((p.parent / q).resolve()) for q in _as_list(data["include_path"])]
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if not name:
            raise ValueError(f"config override {key!r} must be section.key")
        values.setdefault(section, {})
        if values[section] is None:
            values[section] = {}
        values[section][name] = value
    return config_from_dict(values).validate()


def save_config(config: FinetuneConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
