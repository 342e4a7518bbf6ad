"""`lm-eval-audio merge`: fold a LoRA adapter into its base model and write a full model folder.

The result loads with `pretrained=MERGED` alone (no `peft=`), in the harness or in transformers.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, *, pretrained: str | None = None,
                  dtype: str = "float32") -> Path:
    """Merge `adapter_dir` into its base (`pretrained`, default: the adapter's recorded base)."""
    import json

    import torch
    import transformers
    from peft import PeftModel

    adapter = Path(adapter_dir)
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        raise ValueError(f"merge: {adapter} is not a PEFT adapter folder (no adapter_config.json)")
    base_path = pretrained or json.loads(config_file.read_text()).get("base_model_name_or_path")
    if not base_path:
        raise ValueError(f"merge: {config_file} names no base model; pass --pretrained")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    base = transformers.Qwen2AudioForConditionalGeneration.from_pretrained(base_path, dtype=torch_dtype)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    # Tokenizer and feature extractor: from the adapter folder if saved there, else from the base.
    source = adapter if (adapter / "tokenizer_config.json").is_file() else base_path
    transformers.AutoProcessor.from_pretrained(base_path).save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(source).save_pretrained(out)
    logger.info("merged %s into %s -> %s", adapter, base_path, out)
    return out


HELP = "merge a LoRA adapter into a full model directory"  # `lm-eval-audio --help` (entry point lm_eval_audio.commands)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the merge command."""
    parser.add_argument("adapter", help="adapter folder written by finetune")
    parser.add_argument("output_dir", help="folder for the merged model")
    parser.add_argument("--pretrained", help="base model (default: the one recorded in the adapter)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))


def run(args: argparse.Namespace) -> int:
    """Merge and write; returns the exit status."""
    merge_adapter(args.adapter, args.output_dir, pretrained=args.pretrained, dtype=args.dtype)
    return 0
