"""Glue between the spoken-MMLU YAMLs and `lm_eval_audio` (data, prompts and speech live there)."""

from __future__ import annotations

from lm_eval_audio.data.mmlu import load_for_task, spoken_clip
from lm_eval_audio.data.task_audio import refuses_fewshot
from lm_eval_audio.registration import register_components

# Our filters and metrics join lm-eval's registries when one of our tasks loads, not before.
register_components()


def load_dataset(**kwargs):
    """`custom_dataset`: lm-eval passes the YAML's dataset_kwargs plus run metadata (mmlu_path)."""
    return load_for_task(**kwargs)


@refuses_fewshot
def doc_to_audio(doc: dict) -> list[dict]:
    """The clip of the question and its four alternatives (a lazy reference, not samples)."""
    return [spoken_clip(doc, instruction=False, synth_task="spoken_mmlu")]


@refuses_fewshot
def doc_to_audio_gen(doc: dict) -> list[dict]:
    """The clip of the instruction, question and alternatives (the seed's generation protocol)."""
    return [spoken_clip(doc, instruction=True, synth_task="spoken_mmlu_gen")]
