"""`--model qwen2audio`: `hf-audio` plus Qwen2-Audio's own-length audio encoder.

Everything but the audio encoding is `HFAudioLM`'s (one request preparation, batching,
scoring and generation path). What this class adds: each distinct clip of a batch is encoded
once, on its own length instead of 30 s of padding (`encoder.py`: same outputs, a cost that
follows the clip), and the projected audio features enter the model as input embeddings.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from lm_eval.api.registry import register_model

from lm_eval_audio.arch.encoder import encode_audio, extract_features
from lm_eval_audio.models.audio_inputs import BatchAudio
from lm_eval_audio.models.hf_audio import HFAudioLM, _as_bool

logger = logging.getLogger(__name__)

DEFAULT_PRETRAINED = "Qwen/Qwen2-Audio-7B-Instruct"


class OwnLengthAudio:
    """Qwen2-Audio's audio path on each clip's own length; input embeddings for the rows."""

    def __init__(self, model, feature_extractor, placeholder_id: int, sampling_rate: int, own_length: bool) -> None:
        self.model = model
        self.feature_extractor = feature_extractor
        self.placeholder_id = placeholder_id
        self.sampling_rate = sampling_rate
        self.own_length = own_length
        self.calls = 0  # distinct clips encoded

    def encode(self, keys: list[str], arrays: dict[str, np.ndarray]) -> BatchAudio:
        """Encode each distinct clip among `keys` once; embeddings for rows in `keys` order."""
        distinct = list(dict.fromkeys(keys))
        if not distinct:
            embeds = self.model.get_input_embeddings()
            return BatchAudio(counts=[], embed=embeds)
        features = extract_features(self.feature_extractor, [arrays[k] for k in distinct],
                                    sampling_rate=self.sampling_rate, own_length=self.own_length)
        encoded = dict(zip(distinct, encode_audio(self.model, features, own_length=self.own_length)))
        self.calls += len(distinct)
        feats = torch.cat([encoded[k] for k in keys])

        def embed(ids: torch.Tensor) -> torch.Tensor:
            e = self.model.get_input_embeddings()(ids)
            return e.masked_scatter((ids == self.placeholder_id)[..., None], feats.to(e.dtype))

        return BatchAudio(counts=[encoded[k].shape[0] for k in keys], embed=embed)


@register_model("qwen2audio")
class Qwen2AudioLM(HFAudioLM):
    """Qwen2-Audio (base or Instruct): `hf-audio` with `encoder_own_length` (default True: run
    the audio encoder on each clip's length, not on 30 s of padding)."""

    NAME = "qwen2audio"

    def __init__(self, pretrained: str = DEFAULT_PRETRAINED, encoder_own_length: bool = True, **kwargs: Any) -> None:
        self._own_length = _as_bool(encoder_own_length)
        super().__init__(pretrained=pretrained, _extra_identity={"encoder_own_length": encoder_own_length}, **kwargs)

    def _check_architecture(self, model_type: str, pretrained: str) -> None:
        if model_type != "qwen2_audio":
            raise ValueError(f"qwen2audio: {pretrained} is a {model_type!r} checkpoint; use --model hf-audio")

    def _make_audio_encoder(self) -> OwnLengthAudio:
        return OwnLengthAudio(self.core, self.processor.feature_extractor, self.placeholder_id,
                              self.sampling_rate, self._own_length)

    @property
    def encoder_own_length(self) -> bool:
        """Whether clips are encoded on their own length (settable: the benchmark compares both)."""
        return self.audio.own_length

    @encoder_own_length.setter
    def encoder_own_length(self, value: bool) -> None:
        self.audio.own_length = bool(value)

    def get_model_info(self) -> dict:
        """hf-audio's model facts plus the encoder setting."""
        return {**super().get_model_info(), "encoder_own_length": self.encoder_own_length}
