"""The compute floor of the benchmark's cases: only the model work that the answer needs.

Written from transformers' own modules and processor, not from lm_eval_audio's model classes,
so the floor is an independent yardstick for them:

- spoken-MMLU loglikelihood: the audio encoder + projector once per distinct clip, alone, on
  the clip's own length; the language model once per distinct context (audio embeddings +
  question), alone, with the LM head on its last position only; then, per continuation, its
  tokens after the first with the context's KV cache (a one-token letter needs none: its
  log-probability is read from the context's last position);
- ASR generation at batch size B: the encoder once per clip as above, the language model once
  per context, alone, on its own length (the LM head on its last position: the first new
  token), then per batch of B contexts (longest first) `max_gen_toks - 1` greedy decode steps
  together, on their caches left-padded to the longest, the LM head on the last position only.

Inputs (tokenising, log-mel features, splicing the audio embeddings into the token embeddings)
are prepared before the clock starts; everything a model class does beyond these forwards
(decoding audio, features, batching, tokenising) is what its ratio to the floor measures.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

SAMPLE_RATE = 16_000
CLIP = "<|audio_bos|><|AUDIO|><|audio_eos|>"  # Qwen2-Audio's clip placeholder in a raw prompt


@dataclass
class FloorTimes:
    """Seconds spent in each part of one floor run (each part timed alone)."""

    encoder: float = 0.0
    prefill: float = 0.0
    continuation: float = 0.0
    decode: float = 0.0
    tokens: list[list[int]] = field(default_factory=list)  # greedy ids per clip (generation)

    @property
    def total(self) -> float:
        return self.encoder + self.prefill + self.continuation + self.decode


def load(model_dir: str) -> tuple[Any, Any]:
    """transformers' Qwen2-Audio model (eval mode) and processor from a local checkpoint."""
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    model = Qwen2AudioForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


def _tower_for(tower: torch.nn.Module, frames: int) -> torch.nn.Module:
    """The stock `Qwen2AudioEncoder` seen at `frames` mel frames instead of 3000: a shallow copy
    sharing every weight, whose config and position table are cut to the clip's length, so that
    transformers' own `forward` (which refuses any other length) runs on the clip alone."""
    positions = frames // (tower.conv1.stride[0] * tower.conv2.stride[0])
    view = copy.copy(tower)
    view._modules = dict(tower._modules)
    view._modules["embed_positions"] = torch.nn.Embedding.from_pretrained(
        tower.embed_positions.weight[:positions], freeze=True)
    view.config = copy.copy(tower.config)
    view.config.max_source_positions = positions
    return view


@dataclass
class _Clip:
    features: torch.Tensor  # (1, n_mels, frames): the clip's own frames, even
    tower: torch.nn.Module
    n_tokens: int  # audio placeholder positions in the prompt


def _prepare_clips(model, processor, arrays: list[np.ndarray], prompt: str) -> tuple[list[_Clip], list[torch.Tensor]]:
    """Per clip: its own-length features and encoder view, and its prompt's input ids."""
    tower = model.model.audio_tower
    audio_id = model.config.audio_token_id
    clips, ids = [], []
    for a in arrays:
        out = processor(text=[prompt], audio=[a], sampling_rate=SAMPLE_RATE, return_tensors="pt")
        valid = int(out["feature_attention_mask"].sum())
        frames = valid + valid % 2  # stride-2 convolution and pooling need an even count
        clips.append(_Clip(out["input_features"][..., :frames], _tower_for(tower, frames),
                           int((out["input_ids"] == audio_id).sum())))
        ids.append(out["input_ids"][0])
    return clips, ids


@torch.inference_mode()
def _encode(model, clip: _Clip) -> torch.Tensor:
    hidden = clip.tower(clip.features).last_hidden_state
    return model.model.multi_modal_projector(hidden)[0, : clip.n_tokens]


def _embeds(model, ids: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    e = model.get_input_embeddings()(ids)
    return e.masked_scatter((ids == model.config.audio_token_id)[..., None], audio.to(e.dtype))


@torch.inference_mode()
def loglikelihood_floor(model, processor, arrays: list[np.ndarray], context: str,
                        continuations: list[str]) -> tuple[FloorTimes, list[list[float]]]:
    """The floor of scoring every continuation after `context` (with `<audio>` for the clip) on
    each clip; returns the part times and each clip's continuation log-probabilities."""
    prompt = context.replace("<audio>", CLIP)
    clips, ids = _prepare_clips(model, processor, arrays, prompt)
    tok = processor.tokenizer
    n_ctx = len(tok(prompt)["input_ids"])
    conts = [torch.tensor(tok(prompt + c)["input_ids"][n_ctx:]) for c in continuations]
    lm, head = model.model.language_model, model.lm_head
    times, scores = FloorTimes(), []
    for clip, row in zip(clips, ids):
        t0 = time.perf_counter()
        audio = _encode(model, clip)
        t1 = time.perf_counter()
        embeds = _embeds(model, row[None], audio)
        t2 = time.perf_counter()
        out = lm(inputs_embeds=embeds, use_cache=True)
        first = torch.log_softmax(head(out.last_hidden_state[:, -1]).float(), -1)[0]
        t3 = time.perf_counter()
        cache = out.cache
        row_scores = []
        for cont in conts:
            score = float(first[cont[0]])
            if len(cont) > 1:  # later tokens need the earlier ones on top of the cached context
                rest = lm(inputs_embeds=model.get_input_embeddings()(cont[None, :-1]), cache=cache, use_cache=True)
                lp = torch.log_softmax(head(rest.last_hidden_state).float(), -1)[0]
                score += float(lp.gather(-1, cont[1:, None]).sum())
                cache.crop(-(len(cont) - 1))  # back to the context alone
            row_scores.append(score)
        t4 = time.perf_counter()
        times.encoder += t1 - t0
        times.prefill += t3 - t2
        times.continuation += t4 - t3
        scores.append(row_scores)
    return times, scores


@torch.inference_mode()
def generation_floor(model, processor, arrays: list[np.ndarray], context: str, max_gen_toks: int,
                     batch_size: int) -> FloorTimes:
    """The floor of greedy generation of `max_gen_toks` tokens per clip at `batch_size` rows."""
    prompt = context.replace("<audio>", CLIP)
    clips, ids = _prepare_clips(model, processor, arrays, prompt)
    lm, head, embed = model.model.language_model, model.lm_head, model.get_input_embeddings()
    times = FloorTimes(tokens=[[] for _ in arrays])
    audio = []
    for clip in clips:
        t0 = time.perf_counter()
        audio.append(_encode(model, clip))
        times.encoder += time.perf_counter() - t0
    order = sorted(range(len(arrays)), key=lambda i: -len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(ids[i]) for i in rows)
        embeds = [_embeds(model, ids[i][None], audio[i]) for i in rows]
        t0 = time.perf_counter()
        caches, first = [], []
        for e in embeds:  # each context alone, on its own length
            out = lm(inputs_embeds=e, use_cache=True)
            caches.append(out.cache)
            first.append(head(out.last_hidden_state[:, -1]).argmax(-1))
        nxt = torch.cat(first)
        t1 = time.perf_counter()
        # the decode steps batched: the contexts' caches left-padded to the longest
        cache = DynamicCache([
            tuple(torch.cat([torch.nn.functional.pad(getattr(c.layers[layer], part), (0, 0, width - len(ids[i]), 0))
                             for c, i in zip(caches, rows)]) for part in ("keys", "values"))
            for layer in range(len(caches[0].layers))])
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, i in enumerate(rows):
            mask[k, width - len(ids[i]):] = 1
        last = torch.tensor([[len(ids[i]) - 1] for i in rows])
        generated = [nxt]
        for _ in range(max_gen_toks - 1):
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            last = last + 1
            out = lm(inputs_embeds=embed(nxt[:, None]), attention_mask=mask, position_ids=last,
                     cache=cache, use_cache=True)
            cache = out.cache
            nxt = head(out.last_hidden_state[:, -1]).argmax(-1)
            generated.append(nxt)
        t2 = time.perf_counter()
        times.prefill += t1 - t0
        times.decode += t2 - t1
        for k, i in enumerate(rows):
            times.tokens[i] = [int(g[k]) for g in generated]
    return times
