"""`--model qwen2audio`: Qwen2-Audio in lm-eval, for text, audio and audio-only requests.

Built on lm-eval's `HFLM` for everything that is not audio (model/tokenizer/PEFT loading,
devices, data parallelism, chat templates, rolling loglikelihood). Requests with audio go
through our own batching, which

- decodes each distinct clip once per batch, when its batch runs (requests carry references);
- encodes each clip once, on its own length (`encoder.py`), and feeds the projected audio
  features as input embeddings, so one encoding serves every continuation of a context;
- scores all single-token continuations of a context (the four MMLU letters) from one
  forward of that context, and computes the LM head only at the positions that are scored.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    Collator,
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from lm_eval.models.utils_hf import stop_sequences_criteria
from tqdm import tqdm

from lm_eval_audio.audio import (
    MAX_SECONDS,
    SAMPLE_RATE,
    as_clip_list,
    clip_key,
    decode_audio,
    duration_seconds,
    limit_length,
)
from lm_eval_audio.controls import DEFAULT_SEED
from lm_eval_audio.encoder import audio_token_count, encode_audio, extract_features
from lm_eval_audio.identity import checkpoint_fingerprint
from lm_eval_audio.models._support import AudioModelSupport
from lm_eval_audio.prompts import AUDIO_TOKEN, MODES, build_prompt, own_text

logger = logging.getLogger(__name__)

DEFAULT_PRETRAINED = "Qwen/Qwen2-Audio-7B-Instruct"
_TOKENS_PER_SECOND = 25  # 750 audio positions per 30 s; only used to sort by length


@dataclass
class _Request:
    """One lm-eval request prepared for our batching."""

    index: int
    name: str
    prompt: str
    clips: list
    clip_keys: tuple[str, ...]
    task: str = "request"
    continuation: str = ""
    gen_kwargs: dict = field(default_factory=dict)
    context_ids: list[int] = field(default_factory=list)
    continuation_ids: list[int] = field(default_factory=list)

    @property
    def context_key(self) -> tuple:
        return (self.prompt, self.clip_keys)

    def approx_len(self) -> int:
        seconds = sum(duration_seconds(c) or MAX_SECONDS for c in self.clips)
        return len(self.context_ids) + len(self.continuation_ids) + int(seconds * _TOKENS_PER_SECOND)


@register_model("qwen2audio")
class Qwen2AudioLM(AudioModelSupport, HFLM):
    """Qwen2-Audio (base or Instruct) for lm-eval: loglikelihood, rolling loglikelihood, generation.

    model_args beyond HFLM's: `mode` (auto | text | audio), `max_audio_seconds` (default 30),
    `long_audio` (truncate | error: what to do with longer clips), `encoder_own_length`
    (default True: run the audio encoder on each clip's length, not on 30 s of padding),
    `audio_control` (none | silence | shuffle) and `audio_control_seed` (`controls.py`),
    `verify_batch` (default 0: rescore that many sampled requests at batch 1, `verify.py`).
    """

    AUTO_MODEL_CLASS = transformers.Qwen2AudioForConditionalGeneration
    MULTIMODAL = True

    def __init__(
        self,
        pretrained: str = DEFAULT_PRETRAINED,
        mode: str = "auto",
        max_audio_seconds: float = MAX_SECONDS,
        long_audio: str = "truncate",
        encoder_own_length: bool = True,
        device: str = "auto",
        peft: str | None = None,
        audio_control: str = "none",
        audio_control_seed: int = DEFAULT_SEED,
        verify_batch: int = 0,
        **kwargs: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"qwen2audio: unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if long_audio not in ("truncate", "error"):
            raise ValueError(f"qwen2audio: long_audio must be 'truncate' or 'error', got {long_audio!r}")
        if not 0 < float(max_audio_seconds) <= MAX_SECONDS:
            raise ValueError(
                f"qwen2audio: max_audio_seconds must be in (0, {MAX_SECONDS:g}]: the encoder sees at most 30 s"
            )
        if peft:
            _check_adapter_dir(peft)
        # Before loading: a bad control or verify_batch fails in a second, not after a 7B load.
        self._init_support(
            "qwen2audio", audio_control=audio_control, audio_control_seed=audio_control_seed,
            verify_batch=verify_batch,
            model_args=dict(pretrained=pretrained, mode=mode, max_audio_seconds=max_audio_seconds,
                            long_audio=long_audio, encoder_own_length=encoder_own_length, peft=peft, **kwargs),
        )
        super().__init__(pretrained=pretrained, backend="causal", device=device, peft=peft, **kwargs)

        self.mode = mode
        self.max_audio_seconds = float(max_audio_seconds)
        self.long_audio = long_audio
        self.encoder_own_length = _as_bool(encoder_own_length)
        source = pretrained if isinstance(pretrained, str) else self.model.name_or_path
        self.feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(
            source, revision=kwargs.get("revision") or "main"
        )
        self.audio_token_id = self.tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
        self.audio_encoder_calls = 0  # clips encoded; the benchmark reads it
        self._truncated: set[str] = set()  # clips cut in this request call; the run's: `truncated_clips`
        self.dropped_text_docs = 0  # mode=audio: documents whose own text was dropped
        self._setup_cpu_data_parallel()
        self.freeze_identity()

    # -- setup -------------------------------------------------------------------------
    def _setup_cpu_data_parallel(self) -> None:
        # HFLM splits work by rank only when it sees more than one GPU; `accelerate launch` on
        # CPU (or one process per GPU on a one-GPU-visible node) would make every process
        # evaluate everything. Take rank and world size from the accelerator instead.
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self._world_size == 1:
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes
            self._device = accelerator.device
            self._model.to(self._device)

    @property
    def core(self) -> transformers.Qwen2AudioForConditionalGeneration:
        """The Qwen2-Audio module (under a PEFT wrapper, the base model with LoRA layers injected)."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def identity_fields(self) -> dict:
        """Model args that can change a score, the resolved dtype, and checkpoint fingerprints."""
        return {
            **super().identity_fields(),
            "dtype_resolved": str(self.core.dtype),
            "checkpoint": checkpoint_fingerprint(self._model_args.get("pretrained"),
                                                 getattr(self.core.config, "_commit_hash", None)),
            "peft_checkpoint": checkpoint_fingerprint(self._model_args.get("peft")),
        }

    # -- request preparation --------------------------------------------------------------
    def _check_mode(self, requests: list[Instance]) -> None:
        """mode=text must leave a question; mode=audio says what text it drops."""
        texts: dict[str, dict] = {}  # task -> doc_id -> own text, for requests that carry audio
        for req in requests:
            if len(req.args) > 2 and as_clip_list(req.args[2].get("audio")):
                texts.setdefault(req.task_name or "request", {}).setdefault(req.doc_id, own_text(req.args[0]))
        if self.mode == "text":
            for task, by_doc in texts.items():
                blank = [d for d, t in by_doc.items() if not t]
                if blank or (len(by_doc) > 1 and len(set(by_doc.values())) == 1):
                    what = (f"doc {blank[0]} has no text besides its audio" if blank else
                            f"all {len(by_doc)} documents have the same text {next(iter(by_doc.values()))!r}")
                    raise ValueError(
                        f"qwen2audio mode=text on {task}: dropping the audio leaves no question text "
                        f"({what}); the question is in the audio. Use mode=auto or mode=audio, or the "
                        f"task's text twin (mmlu_twin_* for spoken_mmlu_*)"
                    )
        elif self.mode == "audio":
            dropped = [(task, d, t) for task, by_doc in texts.items() for d, t in by_doc.items() if t]
            if dropped:
                self.dropped_text_docs += len(dropped)
                task, doc, text = dropped[0]
                logger.warning(
                    "qwen2audio mode=audio: the text of %d document(s) was dropped, the model hears the audio "
                    "only (e.g. %s doc %s: %r)", len(dropped), task, doc, text[:80],
                )

    def _prepare(self, requests: list[Instance], *, generation: bool) -> list[_Request]:
        self.see_requests(requests)
        self._check_mode(requests)
        prepared = []
        for i, req in enumerate(requests):
            args = req.args
            name = f"{req.task_name or 'request'} doc {req.doc_id}"
            clips = [] if self.mode == "text" else as_clip_list(args[2].get("audio") if len(args) > 2 else None)
            prompt = build_prompt(args[0], len(clips), mode=self.mode, name=name)
            r = _Request(index=i, name=name, prompt=prompt, clips=clips, clip_keys=tuple(clip_key(c) for c in clips),
                         task=req.task_name or "request")
            if generation:
                r.gen_kwargs = dict(args[1])
                r.context_ids = self.tok_encode(prompt)
            else:
                r.continuation = args[1]
                if prompt == "":
                    # As TemplateLM.loglikelihood: BOS/EOS stands in for an empty context.
                    cont = self.tok_encode(args[1], add_special_tokens=False)
                    if cont and cont[0] == self.prefix_token_id:
                        r.context_ids, r.continuation_ids = cont[:1], cont[1:]
                    else:
                        r.context_ids, r.continuation_ids = [self.prefix_token_id], cont
                else:
                    r.context_ids, r.continuation_ids = self._encode_pair(prompt, args[1])
                if not r.continuation_ids:
                    raise ValueError(f"{name}: empty continuation {args[1]!r}")
            prepared.append(r)
        return prepared

    # -- audio -----------------------------------------------------------------------------
    def _decode_clips(self, batch: list[_Request]) -> dict:
        """Decode each distinct clip of a batch once (validated, long-clip policy applied)."""
        arrays: dict = {}
        for r in batch:
            for j, (clip, key) in enumerate(zip(r.clips, r.clip_keys)):
                if key in arrays:
                    continue
                name = f"{r.name}, clip {j}"
                array = self.control.apply(decode_audio(clip, name=name, sampling_rate=SAMPLE_RATE))
                array, cut = limit_length(
                    array, max_seconds=self.max_audio_seconds, policy=self.long_audio, name=name
                )
                if cut:
                    if not self._truncated:
                        logger.warning(
                            "%s is longer than %g s and was truncated (long_audio=truncate); "
                            "a count follows at the end of the run",
                            name, self.max_audio_seconds,
                        )
                    self._truncated.add(key)
                    self.note_truncated(key)
                arrays[key] = array
        return arrays

    def _encode_clips(self, arrays: dict) -> dict[str, torch.Tensor]:
        """Encode decoded clips (one encoder batch); projected features keyed by clip key."""
        if not arrays:
            return {}
        features = extract_features(
            self.feature_extractor, list(arrays.values()), sampling_rate=SAMPLE_RATE, own_length=self.encoder_own_length
        )
        encoded = encode_audio(self.core, features, own_length=self.encoder_own_length)
        self.audio_encoder_calls += len(arrays)
        return dict(zip(arrays.keys(), encoded))

    def _expand(self, ids: list[int], clip_keys: tuple[str, ...], audio: dict[str, torch.Tensor]) -> list[int]:
        """Repeat each `<|AUDIO|>` id as many times as its clip has encoder outputs."""
        out, k = [], 0
        for t in ids:
            if t == self.audio_token_id:
                out.extend([t] * audio[clip_keys[k]].shape[0])
                k += 1
            else:
                out.append(t)
        if k != len(clip_keys):
            raise ValueError(f"prompt has {k} {AUDIO_TOKEN} tokens for {len(clip_keys)} clips")
        return out

    def _embed(self, rows: list[tuple[list[int], tuple[str, ...]]], audio: dict, *, left_pad: bool):
        """Input embeddings (text tokens + audio features) and attention mask for padded rows."""
        embed_tokens = self.core.get_input_embeddings()
        width = max(len(ids) for ids, _ in rows)
        hidden = embed_tokens.weight.shape[1]
        embeds = torch.zeros(len(rows), width, hidden, dtype=embed_tokens.weight.dtype, device=self.device)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, (ids, keys) in enumerate(rows):
            ids_t = torch.tensor(ids, device=self.device)
            e = embed_tokens(ids_t)
            if keys:
                feats = torch.cat([audio[k] for k in keys]).to(e.dtype)
                e = e.masked_scatter((ids_t == self.audio_token_id)[:, None], feats)
            span = slice(width - len(ids), width) if left_pad else slice(0, len(ids))
            embeds[i, span] = e
            mask[i, span] = 1
        return embeds, mask

    def _batches(self, groups: list, size_of) -> list[list]:
        """Pack groups (kept whole) into batches of at most `batch_size` rows."""
        limit = self._batch_limit()
        batches, current, rows = [], [], 0
        for g in groups:
            n = size_of(g)
            if current and rows + n > limit:
                batches.append(current)
                current, rows = [], 0
            current.append(g)
            rows += n
        if current:
            batches.append(current)
        return batches

    def _batch_limit(self) -> int:
        if str(self.batch_size_per_gpu).startswith("auto"):
            # lm-eval's auto detection probes text-only forwards; audio rows are longer, so we
            # start from max_batch_size and halve on out-of-memory instead (see _run_adaptive).
            return getattr(self, "_auto_rows", None) or int(self.max_batch_size)
        return int(self.batch_size_per_gpu)

    def _run_adaptive(self, fn, batch):
        """Run one batch; under batch_size=auto, halve the batch on out-of-memory and retry."""
        try:
            return fn(batch)
        except torch.OutOfMemoryError:
            if not str(self.batch_size_per_gpu).startswith("auto") or len(batch) == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(batch) // 2
            self._auto_rows = max(1, half)
            logger.warning("out of memory at %d groups per batch; retrying with %d", len(batch), half)
            return self._run_adaptive(fn, batch[:half]) + self._run_adaptive(fn, batch[half:])

    # -- loglikelihood ---------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Log-probability of each continuation given its (text and/or audio) context."""
        prepared = self._prepare(requests, generation=False)
        groups: dict[tuple, list[_Request]] = {}
        for r in prepared:
            groups.setdefault(r.context_key, []).append(r)
        # Longest first (padding waste and out-of-memory show up at once); a group shares its clips.
        ordered = sorted(groups.values(), key=lambda g: -(g[0].approx_len() + max(len(r.continuation_ids) for r in g)))
        results: list[tuple[float, bool] | None] = [None] * len(prepared)
        pbar = tqdm(total=len(prepared), disable=disable_tqdm or self.rank != 0, desc="qwen2audio loglikelihood")
        for batch in self._batches(ordered, _rows_needed):
            for r, res in self._run_adaptive(self._score_batch, batch):
                results[r.index] = res
                self.cache_hook.add_partial("loglikelihood", requests[r.index].args, res)
            pbar.update(sum(len(g) for g in batch))
        pbar.close()
        sampled = self.verification.sample(len(prepared))
        alone = [self._score_batch([[prepared[i]]])[0][1][0] for i in sampled]
        self.verification.record_loglikelihood([results[i][0] for i in sampled], alone)
        self._report_truncation()
        return results

    @torch.inference_mode()
    def _score_batch(self, batch: list[list[_Request]]) -> list[tuple[_Request, tuple[float, bool]]]:
        audio = self._encode_clips(self._decode_clips([g[0] for g in batch]))
        rows, targets = [], []  # targets: (request, row index, first scored position)
        for group in batch:
            ctx = self._expand(group[0].context_ids, group[0].clip_keys, audio)
            shared_row = None
            for r in group:
                if len(r.continuation_ids) == 1:
                    # One forward of the context scores every single-token continuation.
                    if shared_row is None:
                        shared_row = len(rows)
                        rows.append((ctx, group[0].clip_keys))
                    targets.append((r, shared_row, len(ctx) - 1))
                else:
                    targets.append((r, len(rows), len(ctx) - 1))
                    rows.append((ctx + r.continuation_ids[:-1], group[0].clip_keys))
        embeds, mask = self._embed(rows, audio, left_pad=False)
        hidden = self.core.model.language_model(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
        hidden = hidden.last_hidden_state
        out = []
        # Single-token siblings (the four letters) read the same position: one LM head and
        # log-softmax over the (real: ~150k) vocabulary serves them all.
        logprobs_at: dict[tuple[int, int, int], torch.Tensor] = {}
        for r, row, start in targets:
            n = len(r.continuation_ids)
            logprobs = logprobs_at.get((row, start, n))
            if logprobs is None:
                logits = self.core.lm_head(hidden[row, start : start + n]).float()
                logprobs = logprobs_at[(row, start, n)] = F.log_softmax(logits, dim=-1)
            cont = torch.tensor(r.continuation_ids, device=logprobs.device)
            score = logprobs.gather(-1, cont[:, None]).sum().item()
            greedy = bool((logprobs.argmax(-1) == cont).all())
            out.append((r, (score, greedy)))
        return out

    # -- generation --------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy (or configured) generation with left padding, batched; stop sequences honoured."""
        prepared = self._prepare(requests, generation=True)
        # Batches never mix tasks, so each task's RTFx is its own.
        collator = Collator(
            prepared,
            sort_fn=lambda r: (-r.approx_len(), r.prompt),
            group_by="gen_kwargs",
            group_fn=lambda r: json.dumps([r.task, r.gen_kwargs], sort_keys=True, default=str),
        )
        results: list[str] = []
        pbar = tqdm(total=len(prepared), disable=disable_tqdm or self.rank != 0, desc="qwen2audio generate_until")
        for batch in collator.get_batched(n=self._batch_limit(), batch_fn=None):
            for r, text in zip(batch, self._run_adaptive(self._generate_batch, batch)):
                results.append(text)
                self.cache_hook.add_partial("generate_until", requests[r.index].args, text)
                pbar.update(1)
        pbar.close()
        results = collator.get_original(results)
        sampled = self.verification.sample(len(prepared))
        alone = [self._generate_batch([prepared[i]], measure=False)[0] for i in sampled]
        self.verification.record_generation([results[i] for i in sampled], alone)
        self._report_truncation()
        if self.rtfx.clips:
            logger.info("qwen2audio %s", self.rtfx.summary())
        return results

    @torch.inference_mode()
    def _generate_batch(self, batch: list[_Request], measure: bool = True) -> list[str]:
        kwargs = normalize_gen_kwargs(batch[0].gen_kwargs, self.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=self.tok_decode(self.eot_token_id, skip_special_tokens=False))
        max_new_tokens = kwargs.pop("max_gen_toks")
        kwargs.pop("max_length", None)
        if not kwargs.get("do_sample"):
            kwargs.pop("temperature", None)  # greedy; avoids transformers' sampling-flag warning
        arrays = self._decode_clips(batch)
        # RTFx clocks compute only (features, encoder, LM, detokenisation), as the Open ASR
        # Leaderboard does; decoding files is outside it. Batches without audio are not ASR.
        clock = (self.rtfx.measure(batch[0].task, sum(len(a) for a in arrays.values()) / SAMPLE_RATE,
                                   clips=len(arrays)) if arrays and measure else nullcontext())
        with clock:
            audio = self._encode_clips(arrays)
            rows = [(self._expand(r.context_ids, r.clip_keys, audio), r.clip_keys) for r in batch]
            embeds, mask = self._embed(rows, audio, left_pad=True)
            # With only inputs_embeds, generate() returns just the new tokens.
            with _lm_head_on_last_position(self.core):
                out = self.core.generate(
                    inputs_embeds=embeds,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    stopping_criteria=stop_sequences_criteria(self.tokenizer, until, 0, len(batch)),
                    pad_token_id=self.tokenizer.pad_token_id,
                    use_cache=True,
                    **kwargs,
                )
            texts = [postprocess_generated_text(self.tok_decode(seq), until, None) for seq in out.tolist()]
        return texts

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Rolling (perplexity) loglikelihood of text, as lm-eval's `hf` model computes it."""
        for req in requests:
            extra = req.args[-1] if len(req.args) > 1 else None
            if isinstance(extra, dict) and as_clip_list(extra.get("audio")):
                raise ValueError(
                    f"{req.task_name} doc {req.doc_id}: loglikelihood_rolling is defined for text only"
                )
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def _report_truncation(self) -> None:
        if self._truncated:
            logger.warning(
                "%d audio clip(s) were longer than %g s and were truncated (long_audio=truncate)",
                len(self._truncated), self.max_audio_seconds,
            )
            self._truncated = set()

    def get_model_info(self) -> dict:
        """HFLM's model facts plus mode, encoder setting, adapter and the protocol fields."""
        info = super().get_model_info()
        info.update(mode=self.mode, encoder_own_length=self.encoder_own_length, peft=self.peft,
                    mode_audio_dropped_text_docs=self.dropped_text_docs, **self.protocol_info())
        return info


class _LastPositionHead(torch.nn.Module):
    """The LM head applied to the last position only."""

    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden[:, -1:, :])


@contextmanager
def _lm_head_on_last_position(model):
    # Qwen2AudioForConditionalGeneration computes logits at every position (it takes no
    # `logits_to_keep`), but generation reads only the last one: at prefill that is a
    # (batch, prompt length, ~150k vocabulary) tensor computed for nothing.
    head = model.lm_head
    model.lm_head = _LastPositionHead(head)
    try:
        yield
    finally:
        model.lm_head = head


def _rows_needed(group: list[_Request]) -> int:
    single = any(len(r.continuation_ids) == 1 for r in group)
    return int(single) + sum(len(r.continuation_ids) > 1 for r in group)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _check_adapter_dir(path: str) -> None:
    p = Path(path).expanduser()
    looks_local = p.exists() or path.startswith((".", "/", "~")) or path.count("/") != 1
    if not looks_local:
        return  # a hub id ("user/adapter"); PEFT resolves and reports it
    if not p.is_dir():
        raise ValueError(f"qwen2audio: peft adapter directory not found: {p}")
    if not (p / "adapter_config.json").is_file():
        raise ValueError(f"qwen2audio: {p} is not a PEFT adapter directory (no adapter_config.json)")
