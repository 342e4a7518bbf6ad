"""Glue between the seed MMLU YAMLs and `lm_eval_audio.data.seed_mmlu` (items and exact strings)."""

from __future__ import annotations

from lm_eval_audio.data.seed_mmlu import backbone_text, item_text, load_for_task, seed_position, spoken_text
from lm_eval_audio.data.task_audio import refuses_fewshot
from lm_eval_audio.registration import register_components

# Our filters and metrics join lm-eval's registries when one of our tasks loads, not before.
register_components()


def load_dataset(**kwargs):
    """`custom_dataset`: the embedded 501 items in the seed's order (`mmlu_path` overrides)."""
    return load_for_task(**kwargs)


@refuses_fewshot
def doc_to_audio(doc: dict) -> list[dict]:
    """The clip speaking the seed's text of this item (a lazy reference, not samples); from a
    folder of pre-made clips, `question_{i}` by the seed's position, as the seed named them."""
    from lm_eval_audio.data.mmlu import spoken_clip_of

    stems = (f"question_{seed_position(doc['mmlu_id'])}",)
    return [spoken_clip_of(doc, spoken_text(doc), synth_task="spoken_mmlu_seed", stems=stems)]


def doc_to_text_item(doc: dict) -> str:
    """The seed's `formatted_question_MMLU` (Qwen2-Audio's user message)."""
    return item_text(doc)


def doc_to_text_backbone(doc: dict) -> str:
    """The seed's user message to the text backbone."""
    return backbone_text(doc)
