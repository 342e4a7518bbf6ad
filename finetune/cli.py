"""`python -m finetune` / `lm-eval-audio finetune`: a YAML config and/or flags -> a training run."""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)

# flag -> (dotted config key, type, help). Flags override the config file.
FLAGS: dict[str, tuple[str, Any, str]] = {
    "--pretrained": ("model.pretrained", str, "base checkpoint (folder or hub id)"),
    "--dtype": ("model.dtype", str, "float32 | bfloat16 | float16"),
    "--task": ("data.task", str, "lm-eval task whose split is the training data"),
    "--split": ("data.split", str, "split of --task to train on (default train)"),
    "--jsonl": ("data.jsonl", str, "JSONL of {messages, audios} conversations"),
    "--mode": ("data.mode", str, "prompt mode, as the qwen2audio model's mode (auto | text | audio)"),
    "--limit": ("data.limit", int, "use only the first N training examples"),
    "--lora-r": ("lora.r", int, "LoRA rank"),
    "--lora-alpha": ("lora.alpha", int, "LoRA alpha"),
    "--lora-dropout": ("lora.dropout", float, "LoRA dropout"),
    "--target-modules": ("lora.target_modules", str, "regex fullmatched against module paths"),
    "--learning-rate": ("training.learning_rate", float, "peak learning rate"),
    "--lr-scheduler": ("training.lr_scheduler", str, "linear | cosine | constant | ..."),
    "--warmup-steps": ("training.warmup_steps", int, "warm-up steps"),
    "--epochs": ("training.epochs", float, "epochs (ignored when --max-steps > 0)"),
    "--max-steps": ("training.max_steps", int, "optimizer steps"),
    "--batch-size": ("training.batch_size", int, "examples per device per step"),
    "--gradient-accumulation-steps": ("training.gradient_accumulation_steps", int, "micro-batches per step"),
    "--seed": ("training.seed", int, "random seed"),
    "--save-steps": ("training.save_steps", int, "checkpoint every N steps"),
    "--output-dir": ("training.output_dir", str, "where checkpoints and the adapter go"),
    "--resume": ("training.resume", str, "auto | never | a checkpoint folder"),
    "--eval-limit": ("evaluation.limit", int, "evaluate on the first N docs of each task"),
    "--eval-batch-size": ("evaluation.batch_size", int, "harness batch size of the evaluation"),
}


HELP = "LoRA fine-tuning of Qwen2-Audio"  # `lm-eval-audio --help` (entry point lm_eval_audio.commands)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the finetune command."""
    parser.add_argument("--config", help="YAML config (sections model, lora, data, training, evaluation)")
    for flag, (key, typ, help_text) in FLAGS.items():
        parser.add_argument(flag, type=typ, dest=key.replace(".", "__"), metavar=key.split(".")[-1].upper(),
                            help=f"{help_text} [{key}]")
    parser.add_argument("--modules-to-save", nargs="*", dest="lora__modules_to_save",
                        help="modules trained in full and saved with the adapter [lora.modules_to_save]")
    parser.add_argument("--gradient-checkpointing", action="store_true", default=None,
                        dest="training__gradient_checkpointing", help="[training.gradient_checkpointing]")
    parser.add_argument("--no-eval", action="store_false", default=None, dest="evaluation__enabled",
                        help="skip the end-of-training harness evaluation [evaluation.enabled]")
    parser.add_argument("--eval-base", action="store_true", default=None, dest="evaluation__evaluate_base",
                        help="also evaluate the base model [evaluation.evaluate_base]")
    parser.add_argument("--eval-tasks", nargs="*", dest="evaluation__tasks", help="[evaluation.tasks]")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=YAML",
                        help="any config key, e.g. --set lora.modules_to_save=[conv1,conv2]")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted-key overrides from the parsed flags (only the ones given)."""
    import yaml

    out = {}
    for name, value in vars(args).items():
        if "__" in name and value is not None and not name.startswith("_"):
            out[name.replace("__", ".")] = value
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def run(args: argparse.Namespace) -> int:
    """Train, save the adapter, evaluate; returns the exit status."""
    from finetune.config import load_config
    from finetune.train import train

    config = load_config(args.config, overrides_from_args(args))
    result = train(config)
    logger.info("adapter written to %s (step %d)", result.output_dir, result.global_step)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m finetune`."""
    parser = argparse.ArgumentParser(prog="python -m finetune", description="LoRA fine-tuning of Qwen2-Audio")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)
