"""`lm-eval-audio archs`: every audio-in, text-out model type of the installed transformers and
what `hf-audio` does with it (`arch/coverage.py` asks transformers; `arch/facts.py` answers)."""

from __future__ import annotations

import argparse

HELP = "list every audio LLM architecture of the installed transformers: supported or refused, and why"
COLUMNS = ("model_type", "status", "tiny builder", "loglikelihood", "generation", "chat template", "LoRA", "reason")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's arguments."""
    parser.add_argument("--format", choices=("markdown", "tsv"), default="markdown")


def table() -> list[dict[str, str]]:
    """One row per model type (`COLUMNS`)."""
    from lm_eval_audio.arch.coverage import coverage
    from lm_eval_audio.arch.facts import ARCHS
    from lm_eval_audio.tiny.archs import BUILDERS

    rows = []
    for c in coverage():
        row = dict.fromkeys(COLUMNS, "")
        row.update({"model_type": c.model_type, "status": c.status, "reason": c.reason})
        f = ARCHS.get(c.model_type)
        if f is not None:
            row["tiny builder"] = "yes" if c.model_type in BUILDERS else "no"
            row["loglikelihood"] = ("KV reuse" if f.kv_reuse else "whole rows") + (
                "" if f.audio_padding_exact else ", one context per batch")
            row["generation"] = f"on .{f.forward_module}" if f.forward_module else "yes"
            row["chat template"] = {"processor": "processor's", "tokenizer": "tokenizer's (processor loses it)"}[
                f.chat_template_from] if f.prompt_route == "text" else "tokenizer backend (ids)"
            # finetune builds text prompts; a backend that renders chats to ids has no route there yet
            if f.prompt_route != "text":
                row["LoRA"] = "no: finetune builds text prompts"
            elif f.forward_module:  # lm-eval's HFLM reads config.vocab_size when it loads a peft adapter
                row["LoRA"] = "trains; peft= fails: the Omni config has no vocab_size"
            else:
                row["LoRA"] = "language model" + (" (its own targets)" if f.lora_targets else "")
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the table."""
    rows = table()
    if args.format == "tsv":
        lines = ["\t".join(COLUMNS)] + ["\t".join(r[c] for c in COLUMNS) for r in rows]
    else:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("supported", "unavailable", "refused", "unknown")}
    print("\n".join(lines))
    print(f"\n{len(rows)} model types: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 1 if counts["unknown"] else 0
