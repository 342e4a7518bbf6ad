"""A fine-tuning run: data, LoRA model and transformers' Trainer, checkpoints, resume, evaluation.

Trainer brings resume (optimizer, scheduler, RNG and data position), checkpoint rotation and
data parallelism under `accelerate launch`. What it cannot know is handled here: the model it
trains is a wrapper around the PEFT model (so one forward holds the whole audio path), so
saving writes the PEFT adapter (plus the resolved config) and resuming loads it back.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from lm_eval_audio.arch.prompts import PromptFormat
from lm_eval_audio.trust.training import SNAPSHOTS_DIR

from finetune.collate import AudioSFTCollator
from finetune.config import LM_TARGETS, FinetuneConfig, save_config
from finetune.data import Example, load_examples
from finetune.modeling import AudioLMForTraining, apply_lora, load_base, load_processor
from finetune.progress import LoggedProgress

logger = logging.getLogger(__name__)

CONFIG_FILE = "finetune_config.yaml"
RESULTS_FILE = "finetune_results.json"
_CHECKPOINT_RE = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-\d+")


class ExampleDataset(Dataset):
    """A list of Examples as a map-style dataset (the collator does the work)."""

    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


class AdapterTrainer(Trainer):
    """Trainer that saves and restores the PEFT adapter inside `AudioLMForTraining`."""

    def __init__(self, *args, finetune_config: FinetuneConfig, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.finetune_config = finetune_config
        self._token_acc: list[float] = []

    def _peft_model(self):
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False).peft_model

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._peft_model().save_pretrained(output_dir)
        save_config(self.finetune_config, Path(output_dir) / CONFIG_FILE)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = Path(resume_from_checkpoint) / "adapter_model.safetensors"
        if not weights.is_file():
            raise ValueError(f"cannot resume: no adapter_model.safetensors in {resume_from_checkpoint}")
        result = set_peft_model_state_dict(self._peft_model(), load_file(str(weights), device="cpu"))
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"cannot resume from {resume_from_checkpoint}: it holds weights this LoRA "
                             f"configuration does not have ({len(unexpected)}, e.g. {unexpected[0]})")
        logger.info("resumed adapter weights from %s", resume_from_checkpoint)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        self._token_acc.append(float(outputs["token_accuracy"]))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Loss alone misleads on small models (a random frozen lm_head keeps it high while the
        # answers are right), so the training log carries answer-token accuracy too.
        if "loss" in logs and self._token_acc:
            logs["answer_token_accuracy"] = round(sum(self._token_acc) / len(self._token_acc), 4)
            self._token_acc = []
        super().log(logs, start_time)


class AdapterSnapshots(TrainerCallback):
    """Keeps the adapter of chosen steps in `output_dir/steps/checkpoint-N`: its weights, the
    run's config and the trainer state (step, epoch, loss log so far), nothing to resume from.

    Trainer's own checkpoints rotate (`save_total_limit`) and carry the optimizer; these are the
    small, permanent record of what the adapter was at a step (the seed scored `checkpoint-37`).
    Each is written to a temporary folder and renamed, so a folder that exists is complete.
    """

    def __init__(self, trainer: "AdapterTrainer", steps: str | list[int]) -> None:
        self.trainer = trainer
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if self.steps != "every" and step not in self.steps:
            return
        if not self.trainer.is_world_process_zero():
            return
        root = Path(args.output_dir) / SNAPSHOTS_DIR
        final = root / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        tmp = root / f".tmp-{final.name}"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.trainer._peft_model().save_pretrained(str(tmp))
        save_config(self.trainer.finetune_config, tmp / CONFIG_FILE)
        state.save_to_json(str(tmp / TRAINER_STATE_NAME))
        if final.exists():  # a rerun of the same step after a resume
            shutil.rmtree(final)
        os.replace(tmp, final)


@dataclass
class RunResult:
    """What a run produced."""

    output_dir: Path
    global_step: int
    resumed_from: str | None
    train_metrics: dict[str, Any]
    eval_results: dict[str, Any] | None = None
    base_eval_results: dict[str, Any] | None = None
    train_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_is_complete(path: str | Path) -> bool:
    """True when Trainer finished writing the checkpoint folder `path` (`checkpoint-N`).

    Trainer writes the adapter, then optimizer, scheduler and RNG states, and the trainer state
    last, none of them atomically: a run killed mid-save leaves a folder that looks like a
    checkpoint. Only a trainer state that parses and names the folder's own step proves that
    everything before it was written.
    """
    path = Path(path)
    state = path / TRAINER_STATE_NAME
    if not (path / "adapter_model.safetensors").is_file() or not state.is_file():
        return False
    try:
        step = json.loads(state.read_text()).get("global_step")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return path.name == f"{PREFIX_CHECKPOINT_DIR}-{step}"


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N` folder in `output_dir` (None if there is none);
    newer incomplete ones (a run killed while saving) are skipped with a warning."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    folders = [p for p in out.iterdir() if p.is_dir() and _CHECKPOINT_RE.fullmatch(p.name)]
    for folder in sorted(folders, key=lambda p: int(p.name.rsplit("-", 1)[1]), reverse=True):
        if checkpoint_is_complete(folder):
            return str(folder)
        logger.warning("skipping %s: incomplete (the run was stopped while writing it)", folder)
    return None


def resolve_resume(config: FinetuneConfig) -> str | None:
    """The checkpoint to resume from, by `training.resume` (auto | never | a folder)."""
    t = config.training
    out = Path(t.output_dir)
    if t.resume == "auto":
        return last_complete_checkpoint(out)
    if t.resume == "never":
        # Any checkpoint folder, complete or not, means the folder belongs to another run.
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last:
            raise ValueError(f"{out} already holds checkpoints ({last}); resume with training.resume=auto "
                             f"or choose another training.output_dir")
        return None
    if not checkpoint_is_complete(t.resume):
        raise ValueError(f"training.resume={t.resume!r} is not a complete checkpoint (no adapter weights, or its "
                         f"{TRAINER_STATE_NAME} is missing, truncated or names another step)")
    return t.resume


def _training_arguments(config: FinetuneConfig) -> TrainingArguments:
    t = config.training
    return TrainingArguments(
        output_dir=t.output_dir,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        dataloader_num_workers=t.dataloader_workers,
        bf16=config.model.dtype == "bfloat16" and torch.cuda.is_available(),
        fp16=config.model.dtype == "float16" and torch.cuda.is_available(),
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _lora_for(lora, model_type: str):
    """The LoRA settings, the default targets replaced by the architecture's own where the facts
    table names them (a decoder whose projections the generic regex misses)."""
    import dataclasses

    from lm_eval_audio.arch.facts import ARCHS

    facts = ARCHS.get(model_type)
    if lora.target_modules == LM_TARGETS and facts is not None and facts.lora_targets:
        logger.info("%s: LoRA targets %s (the architecture's decoder projections)", model_type, facts.lora_targets)
        return dataclasses.replace(lora, target_modules=facts.lora_targets)
    return lora


def train(config: FinetuneConfig) -> RunResult:
    """Run (or resume) the fine-tuning described by `config`, then evaluate through the harness."""
    from transformers import set_seed

    config.validate()
    t = config.training
    resume = resolve_resume(config)
    set_seed(t.seed)
    base, tokenizer, feature_extractor = load_base(config.model)
    processor = load_processor(config.model, base.config.model_type)
    fmt = PromptFormat.from_processor(processor)
    examples = load_examples(config.data, processor)
    if config.training.gradient_checkpointing:
        # Switched on in the model itself: Trainer would look for the method on our wrapper.
        # Non-reentrant, since the checkpointed blocks' inputs need not require grad.
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model = apply_lora(base, _lora_for(config.lora, base.config.model_type))
    model = AudioLMForTraining(peft_model, tokenizer.convert_tokens_to_ids(fmt.placeholder))
    # Qwen2-Audio trains on its own-length encoder (as `qwen2audio` evaluates); any other
    # architecture on its processor's audio tensors and its own forward (as `hf-audio` evaluates).
    own_length = base.config.model_type == "qwen2_audio"
    collator = AudioSFTCollator(tokenizer, feature_extractor, max_audio_seconds=config.data.max_audio_seconds,
                                placeholder=fmt.placeholder, processor=None if own_length else processor)

    args = _training_arguments(config)
    trainer = AdapterTrainer(
        model=model, args=args, train_dataset=ExampleDataset(examples), data_collator=collator,
        processing_class=tokenizer, finetune_config=config,
    )
    if t.adapter_snapshots:
        trainer.add_callback(AdapterSnapshots(trainer, t.adapter_snapshots))
    # Logs go through logging and one labelled bar, not printed dicts (transformers' default).
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(LoggedProgress(f"training adapter on {config.data.task or 'the training set'}"))
    if resume:
        logger.info("resuming from %s", resume)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    trainer.save_model(t.output_dir)
    trainer.save_state()
    metrics = dict(output.metrics)
    trainer.save_metrics("train", metrics)
    result = RunResult(output_dir=Path(t.output_dir), global_step=trainer.state.global_step, resumed_from=resume,
                       train_metrics=metrics, train_seconds=seconds)

    is_main = trainer.is_world_process_zero()
    del trainer, model, peft_model, base
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    _evaluate(config, result)
    if is_main:
        _write_results(result)
    return result


def evaluation_tasks(config: FinetuneConfig) -> list[str]:
    """Tasks the end-of-training evaluation runs (the training task unless configured)."""
    if not config.evaluation.enabled:
        return []
    return list(config.evaluation.tasks) or ([config.data.task] if config.data.task else [])


def _evaluate(config: FinetuneConfig, result: RunResult) -> None:
    from finetune.evaluate import evaluate_with_harness

    tasks = evaluation_tasks(config)
    if not tasks:
        return
    e, d = config.evaluation, config.data
    common = dict(mode=d.mode, batch_size=e.batch_size, limit=e.limit, dtype=config.model.dtype,
                  apply_chat_template=d.apply_chat_template, system_instruction=d.system_instruction,
                  include_path=d.include_path, metadata=d.metadata)
    if e.evaluate_base:
        result.base_eval_results = evaluate_with_harness(config.model.pretrained, tasks, **common)
    result.eval_results = evaluate_with_harness(config.model.pretrained, tasks, adapter=str(result.output_dir), **common)
    if result.eval_results is not None:
        for task, metrics in result.eval_results.items():
            shown = {k: v for k, v in metrics.items() if isinstance(v, float) and "stderr" not in k}
            logger.info("harness evaluation of %s: %s", task, shown)


def _write_results(result: RunResult) -> None:
    payload = {
        "global_step": result.global_step,
        "resumed_from": result.resumed_from,
        "train_seconds": round(result.train_seconds, 3),
        "train_metrics": result.train_metrics,
        "eval_results": result.eval_results,
        "base_eval_results": result.base_eval_results,
    }
    (result.output_dir / RESULTS_FILE).write_text(json.dumps(payload, indent=1, default=str))


def train_from_config(config_path: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """Entry point `lm_eval_audio.trainers: lora`: train from a config file with overrides;
    returns the adapter directory (how lm_eval_audio's reproduce reaches this package)."""
    from finetune.config import load_config

    return Path(train(load_config(config_path, overrides or {})).output_dir)
