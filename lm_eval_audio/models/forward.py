"""The one scoring path and the one generation path of the audio model layer.

Loglikelihood (`score_groups`): requests are grouped by context (clips + text). Each context
runs once; the LM head runs only at the scored positions, once per position shared by all
single-token continuations (the MMLU letters). Multi-token continuations either reuse the
context's KV cache (one forward of just their ids, the cache's rows repeated per
continuation, explicit positions after each context) or, where an architecture cannot reuse
it, run whole (context + continuation). Generation (`generate_batch`): left-padded rows,
`generate()` with the LM head on the last position only; where the rows are input embeddings,
each row's context is first run alone on its own length (`prefill_alone`), so a batch's decode
steps are shared but no row's prompt is computed over another's padding.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache, DynamicLayer
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.models.utils_hf import stop_sequences_criteria

from lm_eval_audio.arch.tokens import expand_placeholders


class _PositionsHead(torch.nn.Module):
    """The LM head applied at chosen positions only: `positions` (rows, k) or None for the last."""

    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head
        self.positions: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.positions is None:
            return self.head(hidden[:, -1:, :])
        index = self.positions[..., None].expand(-1, -1, hidden.shape[-1])
        return self.head(hidden.gather(1, index))


@contextmanager
def positions_head(model):
    """Swap the model's output head for a `_PositionsHead` (yielded) for the duration.

    Models differ in whether their forward takes `logits_to_keep` (Qwen2-Audio's does not),
    and none takes arbitrary positions; at real vocabulary sizes (~150k) the full logits of a
    prompt are most of the forward's memory and a good part of its time.
    """
    head = model.get_output_embeddings()
    parent, attr = _owner(model, head)
    wrapped = _PositionsHead(head)
    setattr(parent, attr, wrapped)
    try:
        yield wrapped
    finally:
        setattr(parent, attr, head)


def _owner(model, module) -> tuple[torch.nn.Module, str]:
    for name, m in model.named_modules():
        if m is module and name:
            parent_name, _, attr = name.rpartition(".")
            return (model.get_submodule(parent_name) if parent_name else model), attr
    raise ValueError(f"{type(model).__name__}: output head not found among its modules")


def _pad(rows: list[list[int]], pad_id: int, device, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


def _audio_rows(lm, contexts: list[tuple[list[int], tuple[str, ...], str]], arrays: dict):
    """Encode the clips of `contexts` (ids, clip keys, name) and expand their placeholders."""
    keys = [k for _, ks, _ in contexts for k in ks]
    audio = lm.audio.encode(keys, arrays)
    rows, start = [], 0
    for ids, ks, name in contexts:
        counts = audio.counts[start: start + len(ks)]
        start += len(ks)
        rows.append(expand_placeholders(ids, lm.placeholder_id, counts, name=name))
    return rows, audio


def _logprobs(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), dim=-1)


def _check_fits(lm, name: str, n_tokens: int, what: str) -> None:
    # Audio is never cut silently: a request whose audio positions and text exceed the model's
    # context is refused by name (text-only requests are truncated by HFLM's own path instead).
    if n_tokens > lm.max_length:
        raise ValueError(f"{name}: {what} is {n_tokens} tokens (audio positions included), over the model's "
                         f"max_length {lm.max_length}; audio requests are never truncated")


@torch.inference_mode()
def score_groups(lm, batch: list[list], arrays: dict) -> list[tuple[object, tuple[float, bool]]]:
    """(request, (logprob, is_greedy)) for every request of a batch of context groups."""
    out = []
    core = lm.core
    with positions_head(core) as head:
        if lm.kv_reuse:
            contexts = [(g[0].context_ids, g[0].clip_keys, g[0].name) for g in batch]
            rows, audio = _audio_rows(lm, contexts, arrays)
            for g, row in zip(batch, rows):
                for r in g:
                    _check_fits(lm, r.name, len(row) + len(r.continuation_ids), "context + continuation")
            ids, mask = _pad(rows, lm.pad_id, lm.device, left=False)
            lengths = torch.tensor([len(r) for r in rows], device=lm.device)
            head.positions = (lengths - 1)[:, None]
            multi = [(gi, r) for gi, g in enumerate(batch) for r in g if len(r.continuation_ids) > 1]
            result = core(**audio.inputs(ids, mask), use_cache=bool(multi))
            first = _logprobs(result.logits[:, 0])  # (contexts, vocab): each context's next token
            for gi, g in enumerate(batch):
                for r in g:
                    if len(r.continuation_ids) == 1:
                        out.append((r, _score(first[gi: gi + 1], r.continuation_ids)))
            if multi:
                out += _continuations(lm, core, head, result.cache if hasattr(result, "cache") else result.past_key_values,
                                      mask, lengths, first, multi)
        else:
            out += _whole(lm, core, head, batch, arrays)
    return out


def _continuations(lm, core, head, cache, prefix_mask, lengths, first, multi):
    """Multi-token continuations from the contexts' KV cache (rows repeated per continuation)."""
    index = torch.tensor([gi for gi, _ in multi], device=lm.device)
    cache.reorder_cache(index)
    conts = [r.continuation_ids[:-1] for _, r in multi]  # the last token is predicted, never read
    ids, mask = _pad(conts, lm.pad_id, lm.device, left=False)
    width = ids.shape[1]
    positions = lengths[index][:, None] + torch.arange(width, device=lm.device)[None, :]
    head.positions = torch.arange(width, device=lm.device)[None, :].expand(len(multi), -1)
    logits = core(input_ids=ids, attention_mask=torch.cat([prefix_mask[index], mask], dim=1),
                  position_ids=positions, cache=cache, use_cache=True).logits
    out = []
    for j, (gi, r) in enumerate(multi):
        n = len(r.continuation_ids)
        lp = torch.cat([first[gi: gi + 1], _logprobs(logits[j, : n - 1])])
        out.append((r, _score(lp, r.continuation_ids)))
    return out


def _whole(lm, core, head, batch, arrays):
    """Architectures without KV reuse: one row per context for its single-token continuations,
    one row (context + continuation) per multi-token continuation."""
    contexts, plan = [], []  # plan: (request, row, n scored positions)
    for g in batch:
        shared = None
        for r in g:
            if len(r.continuation_ids) == 1:
                if shared is None:
                    shared = len(contexts)
                    contexts.append((g[0].context_ids, g[0].clip_keys, g[0].name))
                plan.append((r, shared))
            else:
                plan.append((r, len(contexts)))
                contexts.append((g[0].context_ids + r.continuation_ids[:-1], g[0].clip_keys, g[0].name))
    rows, audio = _audio_rows(lm, contexts, arrays)
    starts = {}
    for (r, row) in plan:
        n_ctx = len(rows[row]) - (len(r.continuation_ids) - 1)
        starts[id(r)] = n_ctx - 1
        _check_fits(lm, r.name, n_ctx + len(r.continuation_ids), "context + continuation")
    ids, mask = _pad(rows, lm.pad_id, lm.device, left=False)
    k = max(len(r.continuation_ids) for r, _ in plan)
    pos = torch.zeros((len(rows), k), dtype=torch.long)
    for r, row in plan:
        n = len(r.continuation_ids)
        pos[row, :n] = torch.arange(starts[id(r)], starts[id(r)] + n)
    head.positions = pos.to(lm.device)
    logits = core(**audio.inputs(ids, mask), use_cache=False).logits
    out, cache = [], {}
    for r, row in plan:
        n = len(r.continuation_ids)
        lp = cache.get((row, n))
        if lp is None:
            lp = cache[(row, n)] = _logprobs(logits[row, :n])
        out.append((r, _score(lp, r.continuation_ids)))
    return out


def _score(logprobs: torch.Tensor, continuation_ids: list[int]) -> tuple[float, bool]:
    cont = torch.tensor(continuation_ids, device=logprobs.device)
    score = logprobs.gather(-1, cont[:, None]).sum().item()
    return score, bool((logprobs.argmax(-1) == cont).all())


@torch.inference_mode()
def generate_batch(lm, batch: list, arrays: dict) -> list[str]:
    """Texts generated for a batch of AudioRequests sharing gen kwargs (left padding)."""
    kwargs = normalize_gen_kwargs(batch[0].gen_kwargs, lm.max_gen_toks)
    until = handle_stop_sequences(kwargs.pop("until", None),
                                  eos=lm.tok_decode(lm.eot_token_id, skip_special_tokens=False))
    max_new_tokens = kwargs.pop("max_gen_toks")
    kwargs.pop("max_length", None)
    if not kwargs.get("do_sample"):
        kwargs.pop("temperature", None)  # greedy; avoids transformers' sampling-flag warning
    rows, audio = _audio_rows(lm, [(r.context_ids, r.clip_keys, r.name) for r in batch], arrays)
    for r, row in zip(batch, rows):
        _check_fits(lm, r.name, len(row) + max_new_tokens, "context + max_gen_toks")
    ids, mask = _pad(rows, lm.pad_id, lm.device, left=True)
    inputs = audio.inputs(ids, mask)
    # With input_ids, generate() returns prompt + new tokens; with only inputs_embeds, the new ones.
    prompt_len = ids.shape[1] if "input_ids" in inputs else 0
    with positions_head(lm.core):
        if "inputs_embeds" in inputs and _plain_decoding(lm.core.generation_config, kwargs):
            cache = prefill_alone(lm.core, inputs["inputs_embeds"], [len(r) for r in rows])
            if cache is not None:
                kwargs["cache"] = cache
        out = lm.core.generate(
            **inputs, max_new_tokens=max_new_tokens,
            stopping_criteria=stop_sequences_criteria(lm.tokenizer, until, prompt_len, len(batch)),
            pad_token_id=lm.pad_id, use_cache=True, **kwargs,
        )
    return [postprocess_generated_text(lm.tok_decode(seq), until, None) for seq in out[:, prompt_len:].tolist()]


def _plain_decoding(config, kwargs: dict) -> bool:
    """Whether `generate()` would continue a given cache row for row: it widens its inputs, not a
    given cache, for beams and several sequences per row, and builds its own cache where a cache
    implementation is named. The gen kwargs override the checkpoint's generation config."""
    def setting(name: str, default=None):
        return kwargs[name] if name in kwargs else getattr(config, name, default)

    return (int(setting("num_beams") or 1) == 1 and int(setting("num_return_sequences") or 1) == 1
            and not setting("cache_implementation"))


def prefill_alone(core, embeds: torch.Tensor, lengths: list[int]) -> DynamicCache | None:
    """Each left-padded row of `embeds` (rows, width, hidden) run alone on its own context but its
    last token (`lengths`: each row's tokens), the caches left-padded into one batch cache that
    `generate()` continues from (it feeds the last column, with positions from the mask).

    A batch's contexts differ in length by their clips (1-30 s); run together, every row is
    computed over the longest row's width: about a third of a batch's prefill work is padding
    for read speech of 2-10 s. Decode steps (one token per row) are where a batch pays, and stay batched. None
    where the model's cache is not plain key/value layers (sliding windows, linear attention):
    `generate()` then runs the padded prefill itself.
    """
    width = embeds.shape[1]
    if len(set(lengths)) < 2 or min(lengths) < 2:
        return None  # no padding to avoid (batch 1 among others): generate()'s own prefill
    if not _plain_layers(DynamicCache(config=core.config)):
        return None
    caches = []
    for row, n in enumerate(lengths):
        out = core(inputs_embeds=embeds[row: row + 1, width - n: width - 1], use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        if not isinstance(cache, DynamicCache) or not _plain_layers(cache):
            return None  # a cache class of the model's own, which its config does not tell
        caches.append((n, cache))
    layers = []
    for i in range(len(caches[0][1].layers)):
        keys, values = [], []
        for n, cache in caches:
            layer = cache.layers[i]
            keys.append(F.pad(layer.keys, (0, 0, width - n, 0)))
            values.append(F.pad(layer.values, (0, 0, width - n, 0)))
        layers.append((torch.cat(keys), torch.cat(values)))
    return DynamicCache(layers)


def _plain_layers(cache: DynamicCache) -> bool:
    return all(type(layer) is DynamicLayer for layer in cache.layers)
