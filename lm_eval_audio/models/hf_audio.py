"""`--model hf-audio`: any transformers model whose processor takes audio, in lm-eval.

Built on lm-eval's `HFLM`: model/tokenizer/PEFT loading, devices, data parallelism, and every
text-only request (loglikelihood, rolling loglikelihood, generation) go through HFLM's own
code, its length handling included. Requests with audio go through one preparation
(`requests.py`), one batching (`batching.py`), one scoring and one generation path
(`forward.py`); the audio itself is decoded when its batch runs (`audio_inputs.py`) and
encoded by the model's own processor and forward, or, where the facts table declares one for the
architecture, by its encoder on each clip's own length (`arch/encoder.py`: same outputs).
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import transformers
from lm_eval.api.instance import Instance
from lm_eval.api.model import CacheHook
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import Collator
from tqdm import tqdm

from lm_eval_audio.trust.controls import DEFAULT_SEED
from lm_eval_audio.trust.identity import checkpoint_fingerprint
from lm_eval_audio.models import archs_support
from lm_eval_audio.models.base import AudioModelSupport
from lm_eval_audio.models.audio_inputs import (OwnLengthAudio, ProcessorAudio, decode_clips, max_seconds_of,
                                               sampling_rate_of)
from lm_eval_audio.models.batching import BatchSize, pack
from lm_eval_audio.models.forward import _pad, generate_batch, score_groups
from lm_eval_audio.models.requests import check_mode, prepare, request_clips, request_name
from lm_eval_audio.models.process_group import close_gloo_group_at_exit
from lm_eval_audio.arch.prompts import MODES, PromptFormat, render_chat, strip_sentinels

logger = logging.getLogger(__name__)

# The most of a loglikelihood batch's width that a row may be padded by (see `loglikelihood`).
MAX_PADDING = 0.1


@register_model("hf-audio")
class HFAudioLM(AudioModelSupport, HFLM):
    """Any transformers audio LLM (loaded with `AutoModelForMultimodalLM` + `AutoProcessor`).

    model_args beyond HFLM's: `mode` (auto | text | audio), `max_audio_seconds` (default: the
    model's feature-extractor limit), `long_audio` (truncate | error), `kv_reuse` (default: per
    architecture, `archs_support.py`), `encoder_own_length` (default True: where the architecture
    has an own-length encoder, run it on each clip's length instead of the 30 s window; same
    outputs), `audio_control` (none | silence | shuffle) and `audio_control_seed` (`controls.py`),
    `verify_batch` (`verify.py`).
    """

    AUTO_MODEL_CLASS = transformers.AutoModelForMultimodalLM
    MULTIMODAL = True
    NAME = "hf-audio"

    def __init__(
        self,
        pretrained: str,
        mode: str = "auto",
        max_audio_seconds: float | None = None,
        long_audio: str = "truncate",
        kv_reuse: bool | str | None = None,
        encoder_own_length: bool | str = True,
        device: str = "auto",
        peft: str | None = None,
        audio_control: str = "none",
        audio_control_seed: int = DEFAULT_SEED,
        verify_batch: int = 0,
        **kwargs: Any,
    ) -> None:
        name = self.NAME
        if mode not in MODES:
            raise ValueError(f"{name}: unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if long_audio not in ("truncate", "error"):
            raise ValueError(f"{name}: long_audio must be 'truncate' or 'error', got {long_audio!r}")
        if peft:
            _check_adapter_dir(peft, name)
        # Before loading: a bad control or verify_batch fails in a second, not after a 7B load.
        self._init_support(
            name, audio_control=audio_control, audio_control_seed=audio_control_seed, verify_batch=verify_batch,
            model_args=dict(pretrained=pretrained, mode=mode, max_audio_seconds=max_audio_seconds,
                            long_audio=long_audio, kv_reuse=kv_reuse, peft=peft,
                            encoder_own_length=encoder_own_length, **kwargs),
        )
        if isinstance(pretrained, str):
            # An instance attribute: HFLM loads with it; it depends on the checkpoint's architecture.
            self.AUTO_MODEL_CLASS, model_type = archs_support.check_loadable(
                pretrained, name, revision=kwargs.get("revision"))
            self._check_architecture(model_type, pretrained)  # before a 7B load, not after
        super().__init__(pretrained=pretrained, backend="causal", device=device, peft=peft, **kwargs)

        self.model_type = self.loaded.config.model_type
        self.forward_module = archs_support.forward_module(self.model_type)
        self.audio_padding_exact = archs_support.audio_padding_exact(self.model_type)
        if not self.audio_padding_exact:
            logger.info("%s: %s's audio encoder runs over the batch's padding; batches with audio hold one context",
                        name, self.model_type)
        source = pretrained if isinstance(pretrained, str) else self.model.name_or_path
        self.processor = archs_support.load_processor(source, self.model_type, revision=kwargs.get("revision"))
        self.sampling_rate = sampling_rate_of(self.processor)
        self.fmt = PromptFormat.from_processor(self.processor, archs_support.prompt_route(self.model_type))
        self.placeholder_id = self.fmt.placeholder_id
        limit = max_seconds_of(self.processor)
        if max_audio_seconds is None:
            self.max_audio_seconds = limit
        else:
            self.max_audio_seconds = float(max_audio_seconds)
            if not 0 < self.max_audio_seconds <= (limit or float("inf")):
                raise ValueError(f"{name}: max_audio_seconds must be in (0, {limit:g}]: the model's feature "
                                 f"extractor keeps at most {limit:g} s" if limit else
                                 f"{name}: max_audio_seconds must be a positive number of seconds, got {max_audio_seconds!r}")
        self.long_audio = long_audio
        self.kv_reuse = archs_support.kv_reuse(self.model_type) if kv_reuse is None else _as_bool(kv_reuse)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        self.mode = mode
        self.own_length_encoder = archs_support.own_length_encoder(self.model_type)
        self.audio = self._make_audio_encoder(_as_bool(encoder_own_length))
        self._truncated: set[str] = set()  # clips cut in this request call; the run's: `truncated_clips`
        self.dropped_text_docs = 0  # mode=audio: documents whose own text was dropped
        self.batching = BatchSize(self.batch_size_per_gpu, self.max_batch_size)
        self._setup_cpu_data_parallel()
        self.freeze_identity()

    def _check_architecture(self, model_type: str, pretrained: str) -> None:
        """Specialisations refuse checkpoints of other architectures here (hf-audio takes any)."""

    def _make_audio_encoder(self, own_length: bool):
        """The object that turns a batch's clips into model inputs (`audio_inputs.py`): the
        architecture's own-length encoder where it has one, else the processor's tensors."""
        if self.own_length_encoder:
            return OwnLengthAudio(self.core, self.processor, self.fmt, self.sampling_rate, self.own_length_encoder,
                                  own_length=own_length)
        return ProcessorAudio(self.processor, self.fmt, self.sampling_rate, self.device, self.core.dtype)

    @property
    def encoder_own_length(self) -> bool:
        """Whether clips are encoded on their own length (False where the architecture has no
        own-length encoder; settable where it has one: the benchmark compares both)."""
        return bool(getattr(self.audio, "own_length", False))

    @encoder_own_length.setter
    def encoder_own_length(self, value: bool) -> None:
        if not isinstance(self.audio, OwnLengthAudio):
            raise ValueError(f"{self.NAME}: {self.model_type} has no own-length encoder (see arch/facts.py)")
        self.audio.own_length = bool(value)

    @property
    def audio_encoder_calls(self) -> int:
        """Clips encoded so far (the tests and the benchmark read it)."""
        return self.audio.calls

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
        close_gloo_group_at_exit()

    @property
    def loaded(self):
        """The transformers model as loaded (under a PEFT wrapper, the base model with LoRA layers injected)."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    @property
    def core(self):
        """The module that forward and generate run on: the loaded model, or the part of it the
        facts table names (`forward_module`: an Omni model's thinker)."""
        return self.loaded.get_submodule(self.forward_module) if self.forward_module else self.loaded

    @contextmanager
    def _core_as_model(self):
        # HFLM's text paths call `self.model`; where the loaded model is not the one that runs
        # (an Omni model has no forward of its own), they run on `core` for the call.
        if not self.forward_module:
            yield
            return
        model, self._model = self._model, self.core
        try:
            yield
        finally:
            self._model = model

    def _model_call(self, inps, attn_mask=None, labels=None):
        with self._core_as_model():
            return super()._model_call(inps, attn_mask, labels)

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        with self._core_as_model():
            return super()._model_generate(context, max_length, stop, **generation_kwargs)

    def identity_fields(self) -> dict:
        """Model args that can change a score, the resolved dtype, and checkpoint fingerprints."""
        return {
            **super().identity_fields(),
            "dtype_resolved": str(self.loaded.dtype),
            "checkpoint": checkpoint_fingerprint(self._model_args.get("pretrained"),
                                                 getattr(self.loaded.config, "_commit_hash", None)),
            "peft_checkpoint": checkpoint_fingerprint(self._model_args.get("peft")),
        }

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The chat rendered by the processor's own template (audio items placed per request later)."""
        return render_chat(self.processor, chat_history, add_generation_prompt, codec=self.fmt.codec,
                           **self.chat_template_args)

    # -- tokenisation: a backend that keeps control tokens out of text (`arch/control_ids.py`) --
    @property
    def _codec(self):
        fmt = getattr(self, "fmt", None)  # HFLM tokenises while loading, before the format exists
        return fmt.codec if fmt is not None else None

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None,
                   **kwargs) -> list[int]:
        """HFLM's encoding, or with a control-id backend its exact ids of the prompt's markers and text."""
        codec = self._codec
        if codec is None:
            return super().tok_encode(string, add_special_tokens=add_special_tokens,
                                      left_truncate_len=left_truncate_len, **kwargs)
        ids = codec.encode(string)
        bos = self.tokenizer.bos_token_id
        wants_bos = add_special_tokens if add_special_tokens is not None else bool(self.add_bos_token)
        if wants_bos and bos is not None and ids[:1] != [bos]:
            ids = [bos] + ids
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_batch_encode(self, strings: list[str], padding_side: str = "left", left_truncate_len: int | None = None,
                         truncation: bool = False):
        """HFLM's batch encoding, or `tok_encode` per string padded on `padding_side`."""
        if self._codec is None:
            return super().tok_batch_encode(strings, padding_side=padding_side, left_truncate_len=left_truncate_len,
                                            truncation=truncation)
        rows = [self.tok_encode(s, left_truncate_len=left_truncate_len) for s in strings]
        return _pad(rows, self.pad_id, self.device, left=padding_side == "left")

    # -- request routing -----------------------------------------------------------------
    def _split(self, requests: list[Instance]) -> tuple[list[int], list[int]]:
        """(indices of requests with audio to hear, indices of text-only requests)."""
        self.see_requests(requests)
        self.dropped_text_docs += check_mode(requests, self.mode, self.NAME)
        audio = [i for i, r in enumerate(requests) if self.mode != "text" and request_clips(r)]
        taken = set(audio)
        return audio, [i for i in range(len(requests)) if i not in taken]

    def _as_text(self, requests: list[Instance], indices: list[int]) -> list[Instance]:
        """Text-only copies (prompt without placeholders or sentinels) for HFLM's own path."""
        out = []
        for i in indices:
            req = requests[i]
            if self.mode == "audio":
                raise ValueError(f"{request_name(req)}: mode=audio but the request carries no audio")
            prompt = strip_sentinels(req.args[0].replace("<audio>", ""))
            out.append(Instance(req.request_type, req.doc, (prompt, *req.args[1:2]), req.idx,
                                (req.task_name, req.doc_id, req.repeats)))
        return out

    def _hflm(self, method, requests: list[Instance], indices: list[int], disable_tqdm: bool) -> list:
        """HFLM's own method on the text-only requests; cached under the original arguments."""
        if not indices:
            return []
        hook, self.cache_hook = self.cache_hook, CacheHook(None)
        try:
            results = method(self._as_text(requests, indices), disable_tqdm=disable_tqdm)
        finally:
            self.cache_hook = hook
        kind = requests[indices[0]].request_type
        for i, res in zip(indices, results):
            self.cache_hook.add_partial(kind, requests[i].args, res)
        return results

    def _decode(self, batch) -> dict:
        return decode_clips(batch, sampling_rate=self.sampling_rate, max_seconds=self.max_audio_seconds,
                            policy=self.long_audio, control=self.control, on_cut=self._on_cut)

    def _on_cut(self, name: str, key: str) -> None:
        if not self._truncated:
            logger.warning("%s is longer than %g s and was truncated (long_audio=truncate); "
                           "a count follows at the end of the run", name, self.max_audio_seconds)
        self._truncated.add(key)
        self.note_truncated(key)

    # -- loglikelihood ---------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Log-probability of each continuation given its (text and/or audio) context."""
        audio_idx, text_idx = self._split(requests)
        results: list = [None] * len(requests)
        for i, res in zip(text_idx, self._hflm(super().loglikelihood, requests, text_idx, disable_tqdm)):
            results[i] = res
        prepared = prepare(self, requests, self.fmt, mode=self.mode, generation=False, indices=audio_idx)
        groups: dict[tuple, list] = {}
        for r in prepared:
            groups.setdefault(r.context_key, []).append(r)
        # Longest first (padding waste and out-of-memory show up at once); a group shares its clips.
        # A row is one forward over its whole context, with no decode steps after it for a batch
        # to share, and padding costs as much as any token: a batch never pads a row by more than
        # MAX_PADDING of its width. An audio context (hundreds of positions) fills a forward alone;
        # sorted, a run's neighbours are close in length and its batches stay full.
        def length(g: list) -> int:
            return g[0].approx_len() - len(g[0].continuation_ids) + max(len(r.continuation_ids) for r in g)

        ordered = sorted(groups.values(), key=lambda g: -length(g))
        pbar = tqdm(total=len(prepared), disable=disable_tqdm or self.rank != 0, desc=f"{self.NAME} loglikelihood")
        for batch in pack(ordered, self._rows_needed, self._batch_rows(), length_of=length, max_padding=MAX_PADDING):
            for r, res in self.batching.run(self._score, batch):
                results[r.index] = res
                self.cache_hook.add_partial("loglikelihood", requests[r.index].args, res)
            pbar.update(sum(len(g) for g in batch))
        pbar.close()
        sampled = self.verification.sample(len(prepared))
        alone = [self._score([[prepared[i]]])[0][1][0] for i in sampled]
        self.verification.record_loglikelihood([results[prepared[i].index][0] for i in sampled], alone)
        self._report_truncation()  # after the rescoring: a clip cut again there is not a new cut
        return results

    def _batch_rows(self) -> int:
        # batch_size as set now (a number, or `auto`'s current size after out-of-memory halvings);
        # one context where the architecture's audio encoder is not exact under padding.
        if not self.audio_padding_exact:
            return 1
        return self.batching.rows if self.batching.auto else int(self.batch_size_per_gpu)

    def _score(self, batch: list[list]) -> list:
        return score_groups(self, batch, self._decode([g[0] for g in batch]))

    def _rows_needed(self, group: list) -> int:
        if self.kv_reuse:
            return 1 + sum(len(r.continuation_ids) > 1 for r in group)
        return int(any(len(r.continuation_ids) == 1 for r in group)) + sum(len(r.continuation_ids) > 1 for r in group)

    # -- generation --------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Generation with left padding, batched; stop sequences and gen kwargs honoured."""
        audio_idx, text_idx = self._split(requests)
        results: list = [None] * len(requests)
        for i, res in zip(text_idx, self._hflm(super().generate_until, requests, text_idx, disable_tqdm)):
            results[i] = res
        prepared = prepare(self, requests, self.fmt, mode=self.mode, generation=True, indices=audio_idx)
        # Batches never mix tasks, so each task's RTFx is its own.
        collator = Collator(
            prepared, sort_fn=lambda r: (-r.approx_len(), r.prompt), group_by="gen_kwargs",
            group_fn=lambda r: json.dumps([r.task, r.gen_kwargs], sort_keys=True, default=str),
        )
        pbar = tqdm(total=len(prepared), disable=disable_tqdm or self.rank != 0, desc=f"{self.NAME} generate_until")
        done = []
        for batch in collator.get_batched(n=self._batch_rows(), batch_fn=None):
            for r, text in zip(batch, self.batching.run(self._generate, batch)):
                done.append(text)
                self.cache_hook.add_partial("generate_until", requests[r.index].args, text)
                pbar.update(1)
        pbar.close()
        for r, text in zip(prepared, collator.get_original(done)):
            results[r.index] = text
        sampled = self.verification.sample(len(prepared))
        alone = [self._generate([prepared[i]], measure=False)[0] for i in sampled]
        self.verification.record_generation([results[prepared[i].index] for i in sampled], alone)
        self._report_truncation()
        if self.rtfx.clips:
            logger.info("%s %s", self.NAME, self.rtfx.summary())
        return results

    def _generate(self, batch: list, measure: bool = True) -> list[str]:
        arrays = self._decode(batch)
        # RTFx clocks compute only (features, encoder, LM, detokenisation), as the Open ASR
        # Leaderboard does; decoding files is outside it. Batches without audio are not ASR.
        clock = (self.rtfx.measure(batch[0].task, sum(len(a) for a in arrays.values()) / self.sampling_rate,
                                   clips=len(arrays)) if arrays and measure else nullcontext())
        with clock:
            return generate_batch(self, batch, arrays)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Rolling (perplexity) loglikelihood of text, as lm-eval's `hf` model computes it."""
        for req in requests:
            extra = req.args[-1] if len(req.args) > 1 else None
            if isinstance(extra, dict) and extra.get("audio"):
                raise ValueError(f"{request_name(req)}: loglikelihood_rolling is defined for text only")
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def _report_truncation(self) -> None:
        if self._truncated:
            logger.warning("%d audio clip(s) were longer than %g s and were truncated (long_audio=truncate)",
                           len(self._truncated), self.max_audio_seconds)
            self._truncated = set()

    def get_model_info(self) -> dict:
        """HFLM's model facts plus mode, architecture, KV reuse, adapter and the protocol fields."""
        info = super().get_model_info()
        info.update(mode=self.mode, model_type=self.model_type, kv_reuse=self.kv_reuse, peft=self.peft,
                    encoder_own_length=self.encoder_own_length,
                    max_audio_seconds=self.max_audio_seconds,
                    mode_audio_dropped_text_docs=self.dropped_text_docs, **self.protocol_info())
        return info


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _check_adapter_dir(path: str, name: str) -> None:
    p = Path(path).expanduser()
    looks_local = p.exists() or path.startswith((".", "/", "~")) or path.count("/") != 1
    if not looks_local:
        return  # a hub id ("user/adapter"); PEFT resolves and reports it
    if not p.is_dir():
        raise ValueError(f"{name}: peft adapter directory not found: {p}")
    if not (p / "adapter_config.json").is_file():
        raise ValueError(f"{name}: {p} is not a PEFT adapter directory (no adapter_config.json)")
