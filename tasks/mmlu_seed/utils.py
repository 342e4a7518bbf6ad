"""Glue between the seed MMLU YAMLs and `lm_eval_audio.data.seed_mmlu` (items and exact strings)."""

from __future__ import annotations

from lm_eval_audio.data.seed_mmlu import backbone_text, item_text, load_for_task, spoken_text


def load_dataset(**kwargs):
    """`custom_dataset`: the embedded 501 items in the seed's order (`mmlu_path` overrides)."""
    return load_for_task(**kwargs)


def doc_to_audio(doc: dict) -> list[dict]:
    """The clip speaking the seed's text of this item (a lazy reference, not samples)."""
    from lm_eval_audio.data.mmlu import spoken_clip_of

    return [spoken_clip_of(doc, spoken_text(doc), synth_task="spoken_mmlu_seed")]


def doc_to_text_item(doc: dict) -> str:
    """The seed's `formatted_question_MMLU` (Qwen2-Audio's user message)."""
    return item_text(doc)


def doc_to_text_backbone(doc: dict) -> str:
    """The seed's user message to the text backbone."""
    return backbone_text(doc)
