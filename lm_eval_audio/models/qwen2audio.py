"""`--model qwen2audio`: `hf-audio` on a Qwen2-Audio checkpoint, by name.

Everything is `HFAudioLM`'s (one request preparation, batching, scoring and generation path,
and the own-length audio encoder that the facts table declares for Qwen2-Audio). What this
name adds: a default checkpoint, and a refusal of checkpoints of other architectures.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.registry import register_model

from lm_eval_audio.models.hf_audio import HFAudioLM

DEFAULT_PRETRAINED = "Qwen/Qwen2-Audio-7B-Instruct"


@register_model("qwen2audio")
class Qwen2AudioLM(HFAudioLM):
    """Qwen2-Audio (base or Instruct): `hf-audio` with Qwen/Qwen2-Audio-7B-Instruct by default."""

    NAME = "qwen2audio"

    def __init__(self, pretrained: str = DEFAULT_PRETRAINED, **kwargs: Any) -> None:
        super().__init__(pretrained=pretrained, **kwargs)

    def _check_architecture(self, model_type: str, pretrained: str) -> None:
        if model_type != "qwen2_audio":
            raise ValueError(f"qwen2audio: {pretrained} is a {model_type!r} checkpoint; use --model hf-audio")
