"""Examples -> model inputs: token ids with audio positions, loss labels, log-mel features.

Tokenisation follows lm-eval's `_encode_pair` (trailing context spaces move to the answer; the
answer's ids are the tail of the ids of prompt + answer), and each `<|AUDIO|>` is repeated once
per encoder output of its clip, as the `qwen2audio` model's `_expand` does: training and
evaluation see the same ids. Labels are -100 on the prompt and audio positions, so only the
answer tokens carry loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from lm_eval_audio.audio import SAMPLE_RATE, clip_key, decode_audio, limit_length
from lm_eval_audio.arch.encoder import audio_token_count, encoder_frames, extract_features
from lm_eval_audio.arch.tokens import expand_placeholders

from finetune.data import Example

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) exactly as lm-eval's causal `_encode_pair` splits them."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    return context_ids, whole[len(context_ids):]


def clip_features(feature_extractor, array: np.ndarray) -> tuple[torch.Tensor, int]:
    """Log-mel features of one clip on its own length (the frames the encoder reads), and its
    number of valid frames: `extract_features` as evaluation computes them, kept per clip so a
    clip is featurised once for the whole run rather than once per epoch."""
    features = extract_features(feature_extractor, [array], sampling_rate=SAMPLE_RATE, own_length=True)
    valid = features.valid_frames[0]
    frames = encoder_frames([valid])
    return features.input_features[0, :, :frames].clone(), valid


@dataclass
class Tokenized:
    """One example as ids; `labels` is -100 wherever no loss is taken."""

    input_ids: list[int]
    labels: list[int]


def tokenize_example(
    tokenizer, example: Example, audio_token_counts: list[int], audio_token_id: int, *, max_length: int | None = None
) -> Tokenized:
    """Ids and labels of one example; `audio_token_counts[k]` = encoder outputs of clip k."""
    context_ids, answer_ids = encode_pair(tokenizer, example.prompt, example.answer)
    if example.append_eos:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{example.name}: the tokenizer has no end token to append to the answer")
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    if not answer_ids:
        raise ValueError(f"{example.name}: empty answer {example.answer!r}")
    if audio_token_id in answer_ids:
        raise ValueError(f"{example.name}: the answer contains the audio placeholder token")
    expanded = expand_placeholders(context_ids, audio_token_id, audio_token_counts, name=example.name)
    ids = expanded + answer_ids
    if max_length is not None and len(ids) > max_length:
        raise ValueError(f"{example.name}: {len(ids)} tokens exceed the model's {max_length}")
    return Tokenized(input_ids=ids, labels=[IGNORE_INDEX] * len(expanded) + list(answer_ids))


class AudioFeatureCache:
    """Decoded, featurised clips keyed by content, computed once per clip for the whole run."""

    def __init__(self, feature_extractor, max_audio_seconds: float = 30.0) -> None:
        self.feature_extractor = feature_extractor
        self.max_audio_seconds = max_audio_seconds
        self._store: dict[str, tuple[torch.Tensor, int]] = {}

    def get(self, clip, name: str) -> tuple[torch.Tensor, int]:
        """(features (n_mels, frames), valid frames) of one clip."""
        key = clip_key(clip)
        hit = self._store.get(key)
        if hit is None:
            array = decode_audio(clip, name=name, sampling_rate=SAMPLE_RATE)
            array, cut = limit_length(array, max_seconds=self.max_audio_seconds, policy="truncate", name=name)
            if cut:
                logger.warning("%s is longer than %g s; trained on its first %g s, as evaluation truncates",
                               name, self.max_audio_seconds, self.max_audio_seconds)
            hit = self._store[key] = clip_features(self.feature_extractor, array)
        return hit


def _pad_rows(rows: list[Tokenized], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r.input_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        input_ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class AudioSFTCollator:
    """Pads a batch of Examples (right padding) into tensors for `AudioLMForTraining`."""

    def __init__(self, tokenizer, feature_extractor, *, max_audio_seconds: float = 30.0, max_length: int | None = None,
                 placeholder: str = "<|AUDIO|>", processor=None):
        # `placeholder`: the processor's audio token (PromptFormat.placeholder); Qwen2-Audio's by default.
        # `processor`: any other architecture; its processor computes the audio tensors and each
        # clip's number of audio positions, as hf-audio's evaluation does (ProcessorAudio).
        self.processor = processor
        self.max_audio_seconds = max_audio_seconds
        self.tokenizer = tokenizer
        self.audio_token_id = tokenizer.convert_tokens_to_ids(placeholder)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.cache = AudioFeatureCache(feature_extractor, max_audio_seconds)
        self.max_length = max_length

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        if self.processor is not None:
            return self._processor_batch(examples)
        feats, valid, rows = [], [], []
        for ex in examples:
            counts = []
            for j, clip in enumerate(ex.clips):
                f, v = self.cache.get(clip, f"{ex.name}, clip {j}")
                feats.append(f)
                valid.append(v)
                counts.append(audio_token_count(v))
            rows.append(tokenize_example(self.tokenizer, ex, counts, self.audio_token_id, max_length=self.max_length))
        batch = _pad_rows(rows, self.pad_id)
        if feats:
            frames = max(f.shape[-1] for f in feats)
            # Frames past a clip's own reach are never read for its outputs (encoder.py), so any
            # fill is exact; repeat the clip's last (silence) column to keep values in range.
            padded = torch.stack([torch.cat([f, f[:, -1:].expand(-1, frames - f.shape[-1])], dim=-1) for f in feats])
            batch["input_features"] = padded
            batch["valid_frames"] = torch.tensor(valid, dtype=torch.long)
        return batch

    def _processor_batch(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        """Any architecture: decoded clips through `ProcessorAudio` (the evaluation's own)."""
        from lm_eval_audio.models.audio_inputs import ProcessorAudio, sampling_rate_of
        from lm_eval_audio.arch.prompts import PromptFormat

        if not hasattr(self, "_audio"):
            fmt = PromptFormat.from_processor(self.processor)
            self._rate = sampling_rate_of(self.processor)
            self._audio = ProcessorAudio(self.processor, fmt, self._rate, "cpu", torch.float32)
            self._arrays: dict = {}
        keys = []
        for ex in examples:
            for j, clip in enumerate(ex.clips):
                key = clip_key(clip)
                if key not in self._arrays:
                    name = f"{ex.name}, clip {j}"
                    array = decode_audio(clip, name=name, sampling_rate=self._rate)
                    self._arrays[key], _ = limit_length(array, max_seconds=self.max_audio_seconds, policy="truncate",
                                                        name=name, sampling_rate=self._rate)
                keys.append(key)
        audio = self._audio.encode(keys, self._arrays)
        rows, start = [], 0
        for ex in examples:
            counts = audio.counts[start: start + len(ex.clips)]
            start += len(ex.clips)
            rows.append(tokenize_example(self.tokenizer, ex, counts, self.audio_token_id, max_length=self.max_length))
        return {**_pad_rows(rows, self.pad_id), **audio.tensors}
