"""Glue between the MMLU text-twin YAMLs and `lm_eval_audio.data.mmlu` (one prompt format)."""

from __future__ import annotations

from lm_eval_audio.data.mmlu import load_for_task, text_prompt
from lm_eval_audio.registration import register_components

# Our filters and metrics join lm-eval's registries when one of our tasks loads, not before.
register_components()


def load_dataset(**kwargs):
    """`custom_dataset`: the same loader, hence the same items in the same order, as spoken MMLU."""
    return load_for_task(**kwargs)


def doc_to_text(doc: dict) -> str:
    """Question and alternatives, then `Answer:` (the clip's words, written)."""
    return text_prompt(doc, instruction=False)


def doc_to_text_gen(doc: dict) -> str:
    """Instruction, question and alternatives, then `Answer:` (the seed's text prompt)."""
    return text_prompt(doc, instruction=True)
