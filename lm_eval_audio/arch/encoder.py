"""Whisper-style audio encoders (features -> encoder -> projector) on each clip's own length.

transformers' Whisper-style audio towers with average pooling (Qwen2-Audio's `Qwen2AudioEncoder`,
Audio Flamingo 3's `AudioFlamingo3Encoder`, which Music Flamingo reuses) run on the full 30 s
window (3000 mel frames): Qwen2-Audio's refuses any other length, Audio Flamingo 3's adds the
whole positional table. So a 5 s clip pays for 30 s of encoder compute. These encoders mask
padded positions as attention keys, their convolutions are local and their pooling pairwise,
so running them on the clip's valid frames (plus a few frames for the convolutions' reach)
gives the same outputs on every valid position at a cost that follows the clip. transformers
has no such entry point, so we call the encoder's own modules here; `own_length=False` runs the
same code on the full window (the stock behaviour), which the tests use as the reference.
Which architectures have such an encoder is the facts table's `own_length_encoder`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MEL_FRAMES_30S = 3000
# Extra mel frames kept past the valid ones: conv1/conv2 (kernel 3) reach 2 frames ahead and
# the count must stay even for the stride-2 conv and pooling.
CONV_REACH_FRAMES = 4
_HOP = 160  # samples per mel frame at 16 kHz
# Zeros kept after the longest clip: the STFT's centred frames near a clip's end must see
# zeros, as in the 30 s window, and the encoder reads CONV_REACH_FRAMES frames past the valid ones.
_EDGE_SAMPLES = 8 * _HOP


def encoder_frames(valid_frames: list[int], *, own_length: bool = True) -> int:
    """Mel frames the encoder runs on for a batch: the longest clip's valid frames plus the
    convolutions' reach, even (stride 2), at most 30 s; the full 30 s window without `own_length`."""
    if not own_length:
        return MEL_FRAMES_30S
    frames = min(MEL_FRAMES_30S, max(valid_frames) + CONV_REACH_FRAMES)
    return frames + frames % 2


def audio_token_count(mel_frames: int) -> int:
    """Number of `<|AUDIO|>` positions a clip of `mel_frames` valid frames occupies."""
    after_conv = (mel_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


@dataclass
class AudioFeatures:
    """Log-mel features of a batch of clips and each clip's number of valid frames."""

    input_features: torch.Tensor  # (n_clips, n_mels, frames)
    valid_frames: list[int]


def extract_features(
    feature_extractor, arrays: list[np.ndarray], sampling_rate: int = 16_000, *, own_length: bool = True
) -> AudioFeatures:
    """Whisper log-mel features as Qwen2AudioProcessor computes them, and each clip's valid frames.

    The processor pads every clip to 30 s. With `own_length`, the batch is padded with zeros to
    its longest clip plus a few hops instead: every frame that the encoder reads equals the 30 s
    computation exactly (the STFT is local and its frames past a clip see zeros either way, and
    Whisper's dynamic-range clamp takes its maximum from the signal, not from the silence), at a
    cost that follows the clips. `own_length=False` is the stock 30 s window.
    """
    kwargs = {"padding": "max_length"}
    if own_length:
        longest = max(len(a) for a in arrays)
        kwargs["max_length"] = min(longest + _EDGE_SAMPLES, feature_extractor.n_samples)
    out = feature_extractor(
        arrays, sampling_rate=sampling_rate, return_attention_mask=True, return_tensors="pt", **kwargs
    )
    valid = out["attention_mask"].sum(-1).tolist()
    return AudioFeatures(input_features=out["input_features"], valid_frames=[int(v) for v in valid])


# The own-length encoders by name (the facts table's `own_length_encoder`): "whisper_pooled", a
# Whisper tower + average pooling + projector; "whisper_pooled_time", the same with Music
# Flamingo's rotary time embedding between tower and projector.
OWN_LENGTH_ENCODERS = ("whisper_pooled", "whisper_pooled_time")


def own_length_samples(n_samples: int, feature_extractor) -> int:
    """Samples a clip of `n_samples` is padded to for own-length features: its longest 30 s window
    plus `_EDGE_SAMPLES` of zeros (see `extract_features`), a whole number of hops, at most the
    feature extractor's window."""
    window = int(feature_extractor.n_samples)
    hop = int(feature_extractor.hop_length)
    wanted = min(n_samples, window) + _EDGE_SAMPLES
    return min(window, -(-wanted // hop) * hop)


def encode_audio(model, features: AudioFeatures, *, own_length: bool = True,
                 kind: str = "whisper_pooled") -> list[torch.Tensor]:
    """Run encoder + projector; return one (n_audio_tokens, hidden) tensor per row of `features`.

    `model` is a Qwen2-Audio, Audio Flamingo 3 or Music Flamingo model (for generation, or its
    inner model). The batch is cut to the longest row's frames (+ the convolutions' reach) when
    `own_length`. With `kind="whisper_pooled_time"` (Music Flamingo) the rows are the 30 s windows
    of one clip, in order: the rotary time embedding is a function of each window's index.
    """
    from transformers.masking_utils import create_bidirectional_mask

    if kind not in OWN_LENGTH_ENCODERS:
        raise ValueError(f"unknown own-length encoder {kind!r}; known: {', '.join(OWN_LENGTH_ENCODERS)}")
    inner = getattr(model, "model", model)
    tower = inner.audio_tower
    projector = inner.multi_modal_projector

    valid = features.valid_frames
    frames = encoder_frames(valid, own_length=own_length)
    x = features.input_features[..., :frames].to(dtype=tower.conv1.weight.dtype, device=tower.conv1.weight.device)

    hidden = torch.nn.functional.gelu(tower.conv1(x))
    hidden = torch.nn.functional.gelu(tower.conv2(hidden)).permute(0, 2, 1)
    seq_len = hidden.shape[1]
    hidden = hidden + tower.embed_positions.weight[:seq_len]

    # Same key mask as the stock path: positions past each row's conv output are padding.
    conv_lengths = torch.tensor([(v - 1) // 2 + 1 for v in valid], device=hidden.device)
    mask_2d = (torch.arange(seq_len, device=hidden.device)[None, :] < conv_lengths[:, None]).long()
    attention_mask = create_bidirectional_mask(
        config=tower.config, inputs_embeds=hidden, attention_mask=mask_2d
    )
    for layer in tower.layers:
        hidden = layer(hidden, attention_mask)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
    hidden = tower.avg_pooler(hidden.permute(0, 2, 1)).permute(0, 2, 1)
    hidden = tower.layer_norm(hidden)
    counts = [audio_token_count(v) for v in valid]
    if kind == "whisper_pooled_time":
        hidden = _time_rotary(inner, tower, hidden, counts)
    projected = projector(hidden)
    return [projected[i, :n] for i, n in enumerate(counts)]


def _time_rotary(inner, tower, hidden: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Music Flamingo's rotary time embedding of one clip's windows, as `get_audio_features`
    applies it on the 30 s window: its timestamps and angles are computed by the model's own
    code for the full window's length, and kept for the positions that the rows have."""
    from transformers.models.musicflamingo.modeling_musicflamingo import apply_rotary_time_emb

    full = tower.config.max_source_positions // 2  # positions of a 30 s window after conv2 and pooling
    ids = torch.full((1, sum(counts)), inner.config.audio_token_id, dtype=torch.long, device=hidden.device)
    post_lengths = torch.tensor(counts, dtype=torch.long, device=hidden.device)
    timestamps = inner._build_audio_timestamps(ids, post_lengths, full)
    cos, sin = inner.pos_emb(timestamps.to(hidden.device), seq_len=full)
    n = hidden.shape[1]
    return apply_rotary_time_emb(hidden, cos[:, :n], sin[:, :n])
