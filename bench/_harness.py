"""Shared pieces of the benchmarks: inputs, the naive baseline scorer, timing and peak memory.

Used by `throughput.py` (CPU, small random checkpoint) and `gpu_7b.py` (random 7B on one GPU),
so both measure the same requests through the same code.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance

from lm_eval_audio.audio import SAMPLE_RATE, decode_audio
from lm_eval_audio.arch.encoder import audio_token_count
from lm_eval_audio.arch.tokens import expand_placeholders

logger = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")
MC_CONTEXT = "<audio>\nAnswer:"  # what tasks/spoken_mmlu's multiple-choice template sends
ASR_CONTEXT = "<audio>Detect the language and recognize the speech: <|en|>"  # Qwen2-Audio base ASR prompt


# -- requests --------------------------------------------------------------------------------
def mc_requests(clips: list[Any]) -> list[Instance]:
    """Spoken-MMLU loglikelihood requests, as lm-eval builds them: 4 per item, one per letter."""
    out = []
    for doc_id, clip in enumerate(clips):
        for letter in LETTERS:
            # lm-eval prefixes each choice with the task's target_delimiter (" ").
            args = (MC_CONTEXT, f" {letter}", {"audio": [clip]})
            out.append(Instance("loglikelihood", {}, args, idx=LETTERS.index(letter),
                                metadata=("spoken_mmlu_bench", doc_id, 1)))
    return out


def asr_requests(arrays: list[np.ndarray], max_gen_toks: int) -> list[Instance]:
    """ASR generation requests with decoded 16 kHz arrays (lm-eval's audio convention)."""
    kwargs = {"until": ["<|im_end|>"], "max_gen_toks": max_gen_toks, "do_sample": False}
    return [
        Instance("generate_until", {},
                 (ASR_CONTEXT, dict(kwargs), {"audio": [{"array": a, "sampling_rate": SAMPLE_RATE}]}),
                 idx=0, metadata=("asr_bench", i, 1))
        for i, a in enumerate(arrays)
    ]


# -- the naive baseline ------------------------------------------------------------------------
@torch.inference_mode()
def naive_loglikelihood(lm, requests: list[Instance], batch_size: int) -> list[tuple[float, bool]]:
    """Score each (context, continuation) request with its own full forward, as HFLM does for text.

    Per request: decode the clip, Whisper features over the stock 30 s window, the stock
    `Qwen2AudioForConditionalGeneration.forward` (audio tower on 3000 frames, logits over the
    whole vocabulary at every position), log-softmax, gather. Requests are sorted longest first
    and right-padded in batches of `batch_size`, as HFLM's `_loglikelihood_tokens` does. The
    token ids are the ones our class scores (`_encode_pair`), so the two can be compared.
    """
    model = lm.core
    fe = lm.processor.feature_extractor
    prepared = []
    for i, req in enumerate(requests):
        ctx, cont, aux = req.args
        prompt = ctx.replace("<audio>", lm.fmt.base_clip)
        ctx_ids, cont_ids = lm._encode_pair(prompt, cont)
        prepared.append((i, ctx_ids, cont_ids, aux["audio"][0]))
    prepared.sort(key=lambda p: -(len(p[1]) + len(p[2])))  # audio length is the same per clip slot
    results: list[tuple[float, bool] | None] = [None] * len(requests)
    device = lm.device
    for start in range(0, len(prepared), batch_size):
        batch = prepared[start:start + batch_size]
        arrays = [decode_audio(clip, name=f"request {i}") for i, _, _, clip in batch]
        feats = fe(arrays, sampling_rate=SAMPLE_RATE, padding="max_length", return_attention_mask=True,
                   return_tensors="pt")
        rows = []
        for (i, ctx_ids, cont_ids, _), valid in zip(batch, feats["attention_mask"].sum(-1).tolist()):
            expanded = expand_placeholders(ctx_ids, lm.placeholder_id, [audio_token_count(int(valid))])
            rows.append((i, expanded + cont_ids, len(expanded), cont_ids))
        width = max(len(r[1]) for r in rows)
        input_ids = torch.full((len(rows), width), lm.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, (_, ids, _, _) in enumerate(rows):
            input_ids[k, : len(ids)] = torch.tensor(ids)
            mask[k, : len(ids)] = 1
        logits = model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device),
            input_features=feats["input_features"].to(device, model.dtype),
            feature_attention_mask=feats["attention_mask"].to(device),
        ).logits
        logprobs = F.log_softmax(logits.float(), dim=-1)  # HFLM: the whole sequence, whole vocabulary
        for k, (i, _, n_ctx, cont_ids) in enumerate(rows):
            lp = logprobs[k, n_ctx - 1 : n_ctx - 1 + len(cont_ids)]
            cont = torch.tensor(cont_ids, device=lp.device)
            results[i] = (lp.gather(-1, cont[:, None]).sum().item(), bool((lp.argmax(-1) == cont).all()))
    return results


# -- measurement ---------------------------------------------------------------------------------
@torch.inference_mode()
def naive_processor_loglikelihood(lm, requests: list[Instance], batch_size: int) -> list[tuple[float, bool]]:
    """The naive way for any architecture: per (context, continuation) request, the model's own
    processor on the whole text + clip and the stock forward (logits over the whole vocabulary
    at every position), right-padded in batches of `batch_size`, longest first."""
    processor, model = lm.processor, lm.core
    tokenizer = processor.tokenizer
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].args[0] + requests[i].args[1]))
    results: list[tuple[float, bool] | None] = [None] * len(requests)
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            prompts = [requests[i].args[0].replace("<audio>", lm.fmt.base_clip) for i in idx]
            conts = [requests[i].args[1] for i in idx]
            arrays = [decode_audio(requests[i].args[2]["audio"][0], name=f"request {i}") for i in idx]
            kw = dict(audio=arrays, sampling_rate=lm.sampling_rate, return_tensors="pt", text_kwargs={"padding": True})
            full = processor(text=[p + c for p, c in zip(prompts, conts)], **kw)
            n_cont = [len(tokenizer(p + c)["input_ids"]) - len(tokenizer(p)["input_ids"]) for p, c in zip(prompts, conts)]
            inputs = {k: (v.to(lm.device, model.dtype) if v.is_floating_point() else v.to(lm.device))
                      for k, v in full.items()}
            logprobs = F.log_softmax(model(**inputs).logits.float(), dim=-1)
            lengths = full["attention_mask"].sum(-1).tolist()
            for k, i in enumerate(idx):
                n, end = n_cont[k], lengths[k]
                lp = logprobs[k, end - n - 1: end - 1]
                cont = full["input_ids"][k, end - n: end].to(lp.device)
                results[i] = (lp.gather(-1, cont[:, None]).sum().item(), bool((lp.argmax(-1) == cont).all()))
    finally:
        tokenizer.padding_side = side
    return results


def _malloc_trim() -> None:
    # glibc keeps freed heap pages; trimming before a run makes its RSS growth its own.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory of a block: CUDA peak allocated on GPU, else peak RSS growth sampled every 5 ms."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.cuda = str(device).startswith("cuda")
        self.peak_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        import psutil

        _malloc_trim()
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._max = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.005):
                self._max = max(self._max, self._proc.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()  # absolute: weights included
            return
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._proc.memory_info().rss)
        self.peak_bytes = self._max - self._base


@dataclass
class Case:
    """One measured configuration: a callable doing the whole job, and what it produced."""

    name: str
    run: Callable[[], Any]
    items: int
    baseline: str | None = None
    seconds: list[float] = field(default_factory=list)
    peak_bytes: list[int] = field(default_factory=list)
    output: Any = None
    extra: dict = field(default_factory=dict)
    warm: Callable[[], Any] | None = None  # a smaller job for the warm-up (default: `run`)
    # The seconds to record, read off the run's output (default: the run's wall time). The compute
    # floor times its parts itself: preparing its inputs is outside what it measures.
    timed: Callable[[Any], float] | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def items_per_s(self) -> float:
        return self.items / self.median_s


def measure(cases: list[Case], reps: int, device: torch.device | str = "cpu", warmup: bool = True) -> None:
    """Warm each case up once, then run all cases `reps` times, alternating, in one process.

    Alternating (A B C A B C ...) spreads any drift of the machine's load over every case
    instead of charging it to whichever case ran last.
    """
    if warmup:
        for c in cases:
            logger.info("warm-up: %s", c.name)
            (c.warm or c.run)()
    for rep in range(reps):
        for c in cases:
            with PeakMemory(device) as mem:
                if str(device).startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = c.run()
                if str(device).startswith("cuda"):
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
            if c.timed is not None:
                dt = c.timed(out)
            c.seconds.append(dt)
            c.peak_bytes.append(mem.peak_bytes)
            c.output = out
            logger.info("rep %d/%d %-40s %.2f s", rep + 1, reps, c.name, dt)


def fmt_mib(n: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{n / 2**20:.1f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-markdown table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


@contextlib.contextmanager
def count_calls(lm) -> Iterator[dict]:
    """Audio-encoder calls (clips encoded) made by our model class inside the block."""
    box = {"start": lm.audio_encoder_calls}
    yield box
    box["calls"] = lm.audio_encoder_calls - box["start"]


def lj_clips(speech_dir: Path, n: int) -> list[Path]:
    """The first `n` LJ Speech clips of the shared data folder (real read speech, 1-10 s)."""
    wavs = sorted((speech_dir / "ljspeech" / "wavs").glob("*.flac"))
    if len(wavs) < n:
        raise FileNotFoundError(f"need {n} LJ Speech clips in {speech_dir}/ljspeech/wavs, found {len(wavs)}")
    return wavs[:n]
