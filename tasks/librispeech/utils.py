"""Python hooks of the LibriSpeech tasks; the data itself is owned by lm_eval_audio.data.librispeech."""

from __future__ import annotations

import re

from lm_eval_audio.data.librispeech import load_librispeech
from lm_eval_audio.data.task_audio import refuses_fewshot
from lm_eval_audio.registration import register_components

# Our filters and metrics join lm-eval's registries when one of our tasks loads, not before.
register_components()

# "The original content of this audio is: '...'", "Transcription: ...", "Sure, here is the transcript: ..."
_PREAMBLE = re.compile(
    r"^\s*(?:sure[,.!]?\s*)?(?:here\s+is\s+)?(?:the\s+)?(?:original\s+content|transcription|transcript|speech)"
    r"(?:\s+of\s+(?:this|the)\s+(?:audio|speech|clip))?\s*(?:is|reads)?\s*:\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’"


def load_dataset(split: str, librispeech_dir: str | None = None, limit: int | None = None, **_metadata):
    """`custom_dataset`: the YAML's dataset_kwargs (split, limit) plus run metadata (librispeech_dir)."""
    return load_librispeech(split, librispeech_dir=librispeech_dir, limit=limit)


@refuses_fewshot
def doc_to_audio(doc: dict) -> list[dict]:
    """One clip per utterance, as a file reference the model decodes when its batch runs."""
    return [doc["audio"]]


def unwrap_transcript(text: str) -> str:
    """The transcript inside a chat model's wrapper sentence and quotes; other text unchanged."""
    match = _PREAMBLE.match(text)
    if match is None:
        return text
    inner = text[match.end():].strip()
    if len(inner) >= 2 and inner[0] in _QUOTES and inner.rstrip(".")[-1] in _QUOTES:
        inner = inner.rstrip(".")[1:-1].strip()
    return inner


def unwrap_transcripts(resps, docs):
    """lm-eval `custom` filter: `unwrap_transcript` on every response of every doc."""
    return [[unwrap_transcript(r) for r in doc_resps] for doc_resps in resps]


def load_asr_synth(**metadata):
    """`custom_dataset` of asr_synth: synthesised Harvard sentences (lm_eval_audio.data.asr_synth)."""
    from lm_eval_audio.data.asr_synth import load_asr_synth as load

    return load(**metadata)
