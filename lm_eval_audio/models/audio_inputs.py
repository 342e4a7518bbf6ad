"""A batch's clips -> model inputs: decode each distinct clip once, then encode.

Two encoders give the same interface (`encode(keys, arrays) -> BatchAudio`):

- `ProcessorAudio` (any architecture): the model's own processor computes the audio tensors
  and how many placeholder positions each clip takes; the model merges audio itself.
- `OwnLengthAudio` (architectures whose facts declare an own-length encoder): the processor's
  features of each distinct clip on its own length, the encoder run on them (`arch/encoder.py`),
  and input embeddings with the clip's projected features at its placeholder positions.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from lm_eval_audio.arch.encoder import AudioFeatures, encode_audio, own_length_samples
from lm_eval_audio.audio import decode_audio, limit_length, wav_base64
from lm_eval_audio.arch.prompts import PromptFormat

logger = logging.getLogger(__name__)


def decode_clips(batch, *, sampling_rate: int, max_seconds: float | None, policy: str, control,
                 on_cut: Callable[[str, str], None]) -> dict[str, np.ndarray]:
    """Decode each distinct clip of a batch of AudioRequests once: validated, the audio control
    applied, the long-clip policy applied (`on_cut(name, key)` for each clip cut)."""
    arrays: dict[str, np.ndarray] = {}
    for r in batch:
        for j, (clip, key) in enumerate(zip(r.clips, r.clip_keys)):
            if key in arrays:
                continue
            name = f"{r.name}, clip {j}"
            array = control.apply(decode_audio(clip, name=name, sampling_rate=sampling_rate))
            if max_seconds is not None:
                array, cut = limit_length(array, max_seconds=max_seconds, policy=policy, name=name,
                                          sampling_rate=sampling_rate)
                if cut:
                    on_cut(name, key)
            arrays[key] = array
    return arrays


@dataclass
class BatchAudio:
    """The encoded audio of one forward's rows: audio positions per clip occurrence (row order)
    and how to turn padded ids into the model's keyword arguments."""

    counts: list[int]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None  # ids -> inputs_embeds, or None

    def inputs(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keyword arguments of the model's forward / generate for these rows."""
        if self.embed is not None:
            return {"inputs_embeds": self.embed(ids), "attention_mask": mask}
        return {"input_ids": ids, "attention_mask": mask, **self.tensors}


_TEXT_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


class ProcessorAudio:
    """Audio tensors from the model's own processor (any architecture whose processor takes audio).

    The processor is called on one placeholder per clip occurrence: it returns the features
    exactly as it would for a full prompt, and expands each placeholder to the clip's number
    of audio positions, which is read off its output (the processor owns that rule).
    """

    def __init__(self, processor, fmt: PromptFormat, sampling_rate: int, device, dtype: torch.dtype) -> None:
        self.processor = processor
        self.fmt = fmt
        self.sampling_rate = sampling_rate
        self.device = device
        self.dtype = dtype
        self.placeholder_id = fmt.placeholder_id
        self.calls = 0  # clip occurrences encoded

    def encode(self, keys: list[str], arrays: dict[str, np.ndarray]) -> BatchAudio:
        """Audio for the clip occurrences `keys` (row order; a clip may occur in several rows)."""
        if not keys:
            return BatchAudio(counts=[])
        if self.fmt.codec is not None:
            # The backend encodes audio only inside a chat: one user turn per clip occurrence,
            # each clip an inline WAV file of the decoded samples (float, bit for bit).
            chats = [[{"role": "user", "content": [{"type": "audio", "base64": wav_base64(arrays[k], self.sampling_rate)}]}]
                     for k in keys]
            out = self.processor.apply_chat_template(chats, tokenize=True, return_dict=True, return_tensors="pt")
        else:
            out = self.processor(text=[self.fmt.placeholder] * len(keys), audio=[arrays[k] for k in keys],
                                 sampling_rate=self.sampling_rate, return_tensors="pt",
                                 # Pad the text only: the audio keeps the processor's own padding
                                 # (Whisper-style encoders want their full window).
                                 text_kwargs={"padding": True})
        counts = (out["input_ids"] == self.placeholder_id).sum(-1).tolist()
        tensors = {}
        for name, value in out.items():
            # the text side belongs to these placeholder rows, not to the prompts; the model
            # derives what it needs (Gemma 3n's token types) from the prompt's ids
            if not isinstance(value, torch.Tensor) or name in _TEXT_OUTPUTS:
                continue
            value = value.to(self.device)
            tensors[name] = value.to(self.dtype) if value.is_floating_point() else value
        self.calls += len(keys)
        return BatchAudio(counts=[int(c) for c in counts], tensors=tensors)


# The processors' names for the mask of valid mel frames (Qwen2-Audio; Audio/Music Flamingo).
_FRAME_MASKS = ("feature_attention_mask", "input_features_mask")


def processor_features(processor, placeholder: str, array: np.ndarray, sampling_rate: int, *,
                       own_length: bool) -> tuple[AudioFeatures, int]:
    """One clip's log-mel features as the model's processor computes them (one row per 30 s window)
    and its number of placeholder positions; with `own_length`, padded to the clip's own length
    (`own_length_samples`) instead of the window, which leaves every frame the encoder reads as is."""
    audio_kwargs = {}
    if own_length:
        audio_kwargs["max_length"] = own_length_samples(len(array), processor.feature_extractor)
    out = processor(text=[placeholder], audio=[array], sampling_rate=sampling_rate, return_tensors="pt",
                    audio_kwargs=audio_kwargs)
    mask = next((out[k] for k in _FRAME_MASKS if k in out), None)
    if mask is None:
        raise ValueError(f"{type(processor).__name__} returns no mask of valid mel frames "
                         f"(looked for {', '.join(_FRAME_MASKS)}); its own-length encoder cannot run")
    count = int((out["input_ids"] == processor.tokenizer.convert_tokens_to_ids(placeholder)).sum())
    valid = [int(v) for v in mask.sum(-1).tolist()]
    return AudioFeatures(input_features=out["input_features"], valid_frames=valid), count


class OwnLengthAudio:
    """Each distinct clip of a batch encoded once, on its own length (`arch/encoder.py`), alone:
    a batch's clips never pad each other, so the encoder's cost per clip does not grow with the
    batch. Returns input embeddings: the rows' ids embedded, projected audio at the placeholders."""

    def __init__(self, model, processor, fmt: PromptFormat, sampling_rate: int, kind: str,
                 own_length: bool = True) -> None:
        self.model = model
        self.processor = processor
        self.fmt = fmt
        self.placeholder_id = fmt.placeholder_id
        self.sampling_rate = sampling_rate
        self.kind = kind
        self.own_length = own_length  # False: the stock 30 s window (same outputs; the benchmark compares)
        self.calls = 0  # distinct clips encoded

    def encode(self, keys: list[str], arrays: dict[str, np.ndarray]) -> BatchAudio:
        """Encode each distinct clip among `keys` once; embeddings for rows in `keys` order."""
        encoded = {k: self._encode_one(k, arrays[k]) for k in dict.fromkeys(keys)}
        self.calls += len(encoded)
        if not keys:
            return BatchAudio(counts=[], embed=self.model.get_input_embeddings())
        feats = torch.cat([encoded[k] for k in keys])

        def embed(ids: torch.Tensor) -> torch.Tensor:
            e = self.model.get_input_embeddings()(ids)
            return e.masked_scatter((ids == self.placeholder_id)[..., None], feats.to(e.device, e.dtype))

        return BatchAudio(counts=[encoded[k].shape[0] for k in keys], embed=embed)

    def _encode_one(self, key: str, array: np.ndarray) -> torch.Tensor:
        features, count = processor_features(self.processor, self.fmt.placeholder, array, self.sampling_rate,
                                             own_length=self.own_length)
        windows = encode_audio(self.model, features, own_length=self.own_length, kind=self.kind)
        out = torch.cat(windows)
        if out.shape[0] != count:
            raise ValueError(f"clip {key}: the encoder gives {out.shape[0]} audio positions, the processor "
                             f"expands its placeholder to {count}")
        return out


def max_seconds_of(processor) -> float | None:
    """The longest clip the model's feature extractor keeps (Whisper-style: its window,
    `n_samples / sampling_rate`; Audio Flamingo 3: `max_audio_len`); None when it has no limit
    (a processor whose own audio defaults turn truncation off: Voxtral pads to a multiple of the
    window and splits it, Qwen3-ASR and Qwen3-Omni pad to the longest clip of the batch)."""
    if getattr(processor, "max_audio_len", None):
        return float(processor.max_audio_len)
    defaults = getattr(processor, "audio_kwargs", None) or {}
    if defaults.get("truncation") is False:
        return None
    fe = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
    n_samples, rate = getattr(fe, "n_samples", None), getattr(fe, "sampling_rate", None)
    if not n_samples:  # Gemma 3n: a truncating call whose default keeps max_length samples
        call = inspect.signature(type(fe).__call__).parameters
        truncates = "truncation" in call and call["truncation"].default is True
        n_samples = call["max_length"].default if truncates and "max_length" in call else None
    if n_samples and rate:
        return n_samples / rate
    return None


def sampling_rate_of(processor) -> int:
    """The sampling rate the model's feature extractor expects."""
    fe = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
    rate = getattr(fe, "sampling_rate", None)
    if not rate:
        raise ValueError(f"{type(processor).__name__} names no audio sampling rate")
    return int(rate)
