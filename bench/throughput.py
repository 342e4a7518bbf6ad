"""CPU throughput benchmark: our `qwen2audio` class against the naive way and lm-eval's own class.

Run from the repository root:

    python -m bench.throughput            # the full table (about 10 minutes on 2 idle cores)
    python -m bench.throughput --quick    # a one-minute smoke run
    python -m bench.throughput --size tiny --quick --json out.json   # what the smoke test runs

Cases (all in one process, warmed up, alternating repetitions, medians):
1. spoken-MMLU loglikelihood, 4 letters per item: ours (own-length encoder, and stock 30 s
   encoder) vs every (context, letter) request scored with its own full forward;
2. ASR generation: ours at several batch sizes vs lm-eval 0.4.13's `hf-audiolm-qwen` (patched
   only to run, see patched_hf_audiolm.py) at the same batch sizes;
3. espeak speech synthesis, cold cache vs cached;
4. where the time of one spoken-MMLU batch goes (decode, resample, features, encoder, LM).

Inputs: spoken-MMLU clips are espeak-ng readings of MMLU questions with their four
alternatives, taken evenly across the seed's 500 shortest test items; ASR clips are LJ Speech
recordings (real read speech) from the shared data folder. The checkpoint is random (speed does
not depend on weight values).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from bench._harness import (
    Case,
    asr_requests,
    count_calls,
    fmt_mib,
    lj_clips,
    mc_requests,
    measure,
    naive_loglikelihood,
    naive_processor_loglikelihood,
    table,
)
from bench.floor import load as load_floor_model

logger = logging.getLogger("bench.throughput")

FLOOR = "compute floor"  # bench/floor.py: encoder per clip, LM per context, nothing else
QWEN_LL = "qwen2audio, own-length encoder"
HF_LL = "hf-audio"
NAIVE_LL = "naive per-request forward"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LM_EVAL_AUDIO_SHARED_DATA", REPO.parent / "shared" / "data"))


# -- inputs -------------------------------------------------------------------------------------
def mmlu_docs(n: int) -> list[dict]:
    """`n` items spread evenly over the seed study's 501 MMLU items (shipped with the package)."""
    from lm_eval_audio.data.seed_mmlu import seed_items

    subset = seed_items()
    picks = np.linspace(0, len(subset) - 1, n).round().astype(int).tolist()
    return [subset[i] for i in picks]


def spoken_mmlu_clips(docs: list[dict], cache_dir: Path) -> tuple[list[dict], str]:
    """One clip per item, through the same path as the spoken_mmlu_seed task's `doc_to_audio`."""
    from lm_eval_audio.data.mmlu import spoken_clip_of
    from lm_eval_audio.data.seed_mmlu import spoken_text
    from lm_eval_audio.tts import Synthesizer, TTSConfig, use_synthesizer

    with use_synthesizer(Synthesizer(TTSConfig(backend="espeak", cache_dir=cache_dir))):
        clips = [spoken_clip_of(d, spoken_text(d)) for d in docs]
    return clips, "espeak-ng readings of the seed's spoken MMLU text (instruction, question, 4 alternatives)"


def concatenated_lj_clips(n: int, out_dir: Path) -> tuple[list[dict], str]:
    """Fallback when the TTS module is unavailable: LJ clips joined to 10-25 s per item."""
    import soundfile as sf

    from lm_eval_audio.audio import audio_ref, decode_audio

    waves = [decode_audio(p) for p in lj_clips(SHARED_DATA / "speech", 16)]
    rng = np.random.default_rng(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        target, parts = rng.uniform(10, 25) * 16_000, []
        while sum(len(p) for p in parts) < target:
            parts.append(waves[rng.integers(len(waves))])
        path = out_dir / f"item{i}.flac"
        sf.write(path, np.concatenate(parts)[: int(target)], 16_000)
        clips.append(audio_ref(path))
    return clips, "LJ Speech clips concatenated to 10-25 s (TTS module unavailable)"


def clip_seconds(clips: list) -> list[float]:
    """Duration of each clip in seconds."""
    from lm_eval_audio.audio import decode_audio

    return [len(decode_audio(c)) / 16_000 for c in clips]


def describe_lengths(seconds: list[float]) -> str:
    """min / median / max of clip lengths."""
    return f"{min(seconds):.1f}/{statistics.median(seconds):.1f}/{max(seconds):.1f} s"


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "load_avg_start": os.getloadavg(),
    }


# -- cases -----------------------------------------------------------------------------------------
def case_loglikelihood(lm, clips: list[dict], batch_size: int, reps: int, warmup: bool = True,
                       hf_lm=None, floor_model=None) -> dict:
    """Case 1: spoken-MMLU letters scored by qwen2audio (own-length and 30 s encoder), by hf-audio
    (the model's processor and its own forward), naively, and the compute floor (`floor.py`) of
    the same work when `floor_model` (transformers' model and processor) is given."""
    from lm_eval_audio.audio import decode_audio

    requests = mc_requests(clips)
    n_items = len(clips)

    # Warm-ups run the first item only: enough to reach steady state, at a quarter of the cost.
    def ours(own_length: bool, reqs=requests):
        def run():
            lm.encoder_own_length = own_length
            try:
                with count_calls(lm) as calls:
                    out = lm.loglikelihood(reqs, disable_tqdm=True)
            finally:
                lm.encoder_own_length = True
            return out, calls["calls"]
        return run

    first = requests[:4]
    cases = [
        Case(QWEN_LL, ours(True), n_items, baseline="naive per-request forward",
             warm=ours(True, first)),
        Case("qwen2audio, stock 30 s encoder", ours(False), n_items, baseline="naive per-request forward",
             warm=ours(False, first)),
        Case("naive per-request forward", lambda: (naive_loglikelihood(lm, requests, batch_size), None), n_items,
             warm=lambda: naive_loglikelihood(lm, first, batch_size)),
    ]
    if hf_lm is not None:
        def hf_run(reqs):
            with count_calls(hf_lm) as calls:
                out = hf_lm.loglikelihood(reqs, disable_tqdm=True)
            return out, calls["calls"]
        cases.append(Case(HF_LL, lambda: hf_run(requests), n_items,
                          baseline="naive per-request forward", warm=lambda: hf_run(first)))
    floor_case = None
    if floor_model is not None:
        from bench.floor import loglikelihood_floor
        from bench._harness import LETTERS, MC_CONTEXT

        arrays = [decode_audio(c) for c in clips]  # decoded before the clock: the floor is model work only
        conts = [f" {x}" for x in LETTERS]
        floor_case = Case(FLOOR, lambda: loglikelihood_floor(*floor_model, arrays, MC_CONTEXT, conts), n_items,
                          timed=lambda out: out[0].total,
                          baseline="naive per-request forward",
                          warm=lambda: loglikelihood_floor(*floor_model, arrays[:1], MC_CONTEXT, conts))
        cases.append(floor_case)
    measure(cases, reps, warmup=warmup)
    own, full, naive = cases[:3]
    scores = lambda c: np.array([s for s, _ in c.output[0]])  # noqa: E731
    floor_extra = {}
    if floor_case is not None:
        floor_case.extra["parts_s"] = {k: v for k, v in vars(floor_case.output[0]).items() if k != "tokens"}
        floor_scores = np.array(floor_case.output[1]).reshape(-1)
        floor_extra = {"max_abs_diff_floor_vs_naive": float(np.abs(floor_scores - scores(naive)).max())}
    return {
        **floor_extra,
        "cases": cases,
        "encoder_calls_per_item": own.output[1] / n_items,
        "encoder_calls_per_item_30s": full.output[1] / n_items,
        "max_abs_diff_vs_naive": float(np.abs(scores(own) - scores(naive)).max()),
        "max_abs_diff_30s_vs_naive": float(np.abs(scores(full) - scores(naive)).max()),
        "greedy_agree_vs_naive": all(a[1] == b[1] for a, b in zip(own.output[0], naive.output[0])),
        **({"max_abs_diff_hf_audio_vs_naive": float(np.abs(scores(cases[3]) - scores(naive)).max()),
            "max_abs_diff_hf_audio_vs_qwen2audio": float(np.abs(scores(cases[3]) - scores(own)).max()),
            "speedup_hf_audio_vs_naive": naive.median_s / cases[3].median_s,
            "speedup_qwen2audio_vs_naive": naive.median_s / own.median_s} if hf_lm is not None else {}),
        "requests": len(requests),
        "batch_size": batch_size,
    }


def case_generation(ours_lm, lmeval_lm, arrays: list[np.ndarray], batch_sizes: list[int],
                    lmeval_batch_sizes: list[int], max_gen_toks: int, reps: int, warmup: bool = True,
                    hf_lm=None, floor_model=None) -> dict:
    """Case 2: ASR generation, ours and lm-eval's class, at each batch size, and the compute
    floor (`floor.py`) at each of our batch sizes when `floor_model` is given."""
    requests = asr_requests(arrays, max_gen_toks)

    def run_with(lm, bs, reqs=requests):
        def run():
            lm.batch_size_per_gpu = bs
            return lm.generate_until(reqs, disable_tqdm=True)
        return run

    # Warm-up: one batch's worth of clips.
    ours = [Case(f"qwen2audio, batch {bs}", run_with(ours_lm, bs), len(arrays), warm=run_with(ours_lm, bs, requests[:bs]))
            for bs in batch_sizes]
    theirs = [Case(f"lm-eval hf-audiolm-qwen (patched), batch {bs}", run_with(lmeval_lm, bs), len(arrays),
                   warm=run_with(lmeval_lm, bs, requests[:bs]))
              for bs in lmeval_batch_sizes]
    hf = [Case(f"hf-audio, batch {bs}", run_with(hf_lm, bs), len(arrays), warm=run_with(hf_lm, bs, requests[:bs]))
          for bs in batch_sizes] if hf_lm is not None else []
    floors = []
    if floor_model is not None:
        from bench.floor import generation_floor
        from bench._harness import ASR_CONTEXT

        def floor_run(bs, clips=arrays):
            return lambda: generation_floor(*floor_model, clips, ASR_CONTEXT, max_gen_toks, bs)
        floors = [Case(f"{FLOOR}, batch {bs}", floor_run(bs), len(arrays), warm=floor_run(bs, arrays[:bs]),
                       timed=lambda out: out.total)
                  for bs in batch_sizes]
    measure(ours + hf + theirs + floors, reps, warmup=warmup)
    ours_b1 = next(c for c in ours if c.name == "qwen2audio, batch 1") if 1 in batch_sizes else ours[0]
    best_ours = min(ours, key=lambda c: c.median_s)
    best_theirs = min(theirs, key=lambda c: c.median_s)
    reference = ours_b1.output
    for c in ours:
        c.baseline = best_theirs.name
        c.extra["identical_to_ours_b1"] = sum(a == b for a, b in zip(c.output, reference))
    hf_extra = {}
    if hf:
        best_hf = min(hf, key=lambda c: c.median_s)
        for c in hf:
            c.baseline = best_theirs.name
            c.extra["identical_to_ours_b1"] = sum(a == b for a, b in zip(c.output, reference))
        hf_extra = {"best_hf_audio": best_hf.name,
                    "speedup_hf_audio_best_vs_best_lmeval": best_theirs.median_s / best_hf.median_s,
                    "hf_audio_all_identical_to_b1": all(c.output == hf[0].output for c in hf),
                    "hf_audio_identical_to_qwen2audio": all(c.extra["identical_to_ours_b1"] == len(arrays) for c in hf)}
    for c in theirs:
        c.baseline = ours_b1.name
        # lm-eval's class does not cut at stop sequences; compare the text before the stop string.
        c.extra["identical_to_ours_b1"] = sum(a.split("<|im_end|>")[0] == b for a, b in zip(c.output, reference))
    floor_extra = {}
    if floors:
        tok = floor_model[1].tokenizer
        best_floor = min(floors, key=lambda c: c.median_s)
        for c in floors:
            c.baseline = best_theirs.name
            c.extra["parts_s"] = {k: v for k, v in vars(c.output).items() if k != "tokens"}
            # The same greedy transcript as our class (text before the stop string, specials dropped).
            texts = [tok.decode(t, skip_special_tokens=True) for t in c.output.tokens]
            c.extra["identical_to_ours_b1"] = sum(a == b for a, b in zip(texts, reference))
            c.output = texts
        floor_extra = {"best_floor": best_floor.name}
    return {
        **hf_extra,
        **floor_extra,
        "cases": ours + hf + theirs + floors,
        "best_ours": best_ours.name,
        "best_lmeval": best_theirs.name,
        "speedup_best_vs_best_lmeval": best_theirs.median_s / best_ours.median_s,
        "speedup_best_vs_ours_b1": ours_b1.median_s / best_ours.median_s,
        "ours_all_identical_to_b1": all(c.extra["identical_to_ours_b1"] == len(arrays) for c in ours),
        "transcripts_b1": reference,
        "transcripts_best": best_ours.output,
        "n_clips": len(arrays),
        "max_gen_toks": max_gen_toks,
    }


def case_other_arch(arch: str, clips: list[dict], batch_size: int, reps: int, warmup: bool, work: Path) -> dict:
    """Case 5: the spoken-MMLU loglikelihood case on another architecture's tiny checkpoint,
    hf-audio against the naive per-request forward of that model's processor and forward."""
    from lm_eval_audio.models.hf_audio import HFAudioLM
    from lm_eval_audio.tiny.archs import build_arch

    model_dir = build_arch(work / f"tiny-{arch}", arch)
    lm = HFAudioLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size)
    requests = mc_requests(clips)
    first = requests[:4]
    cases = [
        Case(f"hf-audio on {arch}", lambda: lm.loglikelihood(requests, disable_tqdm=True), len(clips),
             baseline=f"naive per-request forward ({arch})", warm=lambda: lm.loglikelihood(first, disable_tqdm=True)),
        Case(f"naive per-request forward ({arch})",
             lambda: naive_processor_loglikelihood(lm, requests, batch_size), len(clips),
             warm=lambda: naive_processor_loglikelihood(lm, first, batch_size)),
    ]
    measure(cases, reps, warmup=warmup)
    ours, naive = (np.array([s for s, _ in c.output]) for c in cases)
    return {"cases": cases, "arch": arch, "kv_reuse": lm.kv_reuse, "max_abs_diff_vs_naive": float(np.abs(ours - naive).max()),
            "params_m": sum(p.numel() for p in lm.model.parameters()) / 1e6}


def case_tts(texts: list[str], work: Path, reps: int, warmup: bool = True) -> dict:
    """Case 3: espeak synthesis into an empty cache vs the same texts from a filled cache."""
    from lm_eval_audio.tts import Synthesizer, TTSConfig

    filled = work / "tts-filled"
    seeded = Synthesizer(TTSConfig(backend="espeak", cache_dir=filled))
    for t in texts:
        seeded.clip(t)
    counter = iter(range(10_000))

    def synth(cache_dir_fn):
        def run():
            s = Synthesizer(TTSConfig(backend="espeak", cache_dir=cache_dir_fn()))
            for t in texts:
                s.clip(t)
            return s.stats
        return run

    cold = Case("espeak, cold cache", synth(lambda: work / f"tts-cold-{next(counter)}"), len(texts))
    cached = Case("espeak, cached", synth(lambda: filled), len(texts), baseline="espeak, cold cache")
    measure([cold, cached], reps, warmup=warmup)
    return {"cases": [cold, cached], "cold_made": cold.output.made, "cached_reused": cached.output.reused}


def case_breakdown(lm, clips: list[dict], batch_size: int, reps: int, warmup: bool = True) -> dict:
    """Case 4: where the time of one spoken-MMLU batch (`batch_size` items) goes, in our class."""
    import lm_eval_audio.audio as audio_mod
    import lm_eval_audio.models.audio_inputs as ai

    requests = mc_requests(clips[:batch_size])
    timings: dict[str, float] = {}

    def timed(key, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
        return wrapper

    core = lm.core
    lm_stack = core.model.language_model
    results = {}
    for own_length in (True, False):
        per_rep: list[dict] = []
        first = 0 if warmup else 1
        for rep in range(first, reps + 1):  # rep 0 is the warm-up
            timings.clear()
            with ExitStack() as stack:
                for owner, attr, key in ((ai, "decode_audio", "decode (incl. resample)"),
                                         (audio_mod, "resample", "resample"),
                                         (ai, "processor_features", "feature extraction"),
                                         (ai, "encode_audio", "audio encoder + projector"),
                                         (lm_stack, "forward", "language model"),
                                         (core.lm_head, "forward", "lm head (scored positions)")):
                    # A renamed function must fail here: a silently missing row would misstate the breakdown.
                    stack.enter_context(mock.patch.object(owner, attr, timed(key, getattr(owner, attr))))
                lm.encoder_own_length = own_length
                t0 = time.perf_counter()
                lm.loglikelihood(requests, disable_tqdm=True)
                total = time.perf_counter() - t0
                lm.encoder_own_length = True
            row = dict(timings)
            row["audio decode"] = row.pop("decode (incl. resample)", 0.0) - row.get("resample", 0.0)
            row["total"] = total
            row["other (tokenise, embed, batching)"] = total - sum(
                v for k, v in row.items() if k != "total")
            if rep:
                per_rep.append(row)
        results["own-length encoder" if own_length else "stock 30 s encoder"] = {
            k: statistics.median(r[k] for r in per_rep) for k in per_rep[0]}
    return {"components": results, "items": len(requests) // 4, "batch_size": batch_size}


# -- report (from the JSON form, so a saved run renders again with --from-json) ----------------------
FLOOR_GOAL = 1.15  # the goal: each case at most this many times its compute floor


def _case(cases: list[dict], name: str) -> dict | None:
    return next((c for c in cases if c["name"] == name), None)


def _best(cases: list[dict], prefix: str) -> dict | None:
    found = [c for c in cases if c["name"].startswith(prefix)]
    return min(found, key=lambda c: c["median_s"]) if found else None


def ratios(report: dict) -> dict[str, float]:
    """Every headline ratio of a run: `speedup_*` = baseline time / this time (higher is faster);
    `*_over_floor` and `*_time_ratio` = this time / the other time (1.0 is the floor)."""
    out: dict[str, float] = {}

    def add(prefix: str, q: dict, h: dict | None, base: dict, base_key: str, floor: dict | None) -> None:
        out[f"{prefix}_qwen2audio_speedup_vs_{base_key}"] = base["median_s"] / q["median_s"]
        if h:
            out[f"{prefix}_hf_audio_speedup_vs_{base_key}"] = base["median_s"] / h["median_s"]
            out[f"{prefix}_hf_audio_over_qwen2audio_time_ratio"] = h["median_s"] / q["median_s"]
        if floor:
            out[f"{prefix}_qwen2audio_over_floor"] = q["median_s"] / floor["median_s"]
            if h:
                out[f"{prefix}_hf_audio_over_floor"] = h["median_s"] / floor["median_s"]

    if report.get("ll"):
        cs = report["ll"]["cases"]
        add("ll", _case(cs, QWEN_LL), _case(cs, HF_LL), _case(cs, NAIVE_LL), "naive", _case(cs, FLOOR))
    if report.get("gen"):
        cs = report["gen"]["cases"]
        best_hf, hf_b1 = _best(cs, "hf-audio, batch"), _case(cs, "hf-audio, batch 1")
        # Generation compares each class at its best batch size (the floor's too).
        add("gen_best", _best(cs, "qwen2audio, batch"), best_hf, _best(cs, "lm-eval"), "lmeval_best", _best(cs, FLOOR))
        if best_hf and hf_b1:
            out["gen_best_hf_audio_speedup_vs_hf_audio_batch1"] = hf_b1["median_s"] / best_hf["median_s"]
        # what batching can gain at all on this machine: the same decode math in the floor
        for name, key in (("qwen2audio", "qwen2audio"), (FLOOR, "floor")):
            best, b1 = _best(cs, f"{name}, batch"), _case(cs, f"{name}, batch 1")
            if best and b1:
                out[f"gen_best_{key}_speedup_vs_{key}_batch1"] = b1["median_s"] / best["median_s"]
    return out


def case_rows(section: str, cases: list[dict]) -> list[list[str]]:
    """Table rows for a list of measured cases (ratio = baseline median / this median; for the
    classes of this package also this median / the compute floor's)."""
    by_name = {c["name"]: c for c in cases}
    floor = _best(cases, FLOOR)
    rows = []
    for c in cases:
        base = by_name.get(c["baseline"])
        ratio = f"{base['median_s'] / c['median_s']:.2f}x vs {base['name']}" if base else "(baseline)"
        over = (f"{c['median_s'] / floor['median_s']:.2f}"
                if floor and c["name"].startswith(("qwen2audio", "hf-audio", FLOOR)) else "")
        rows.append([section, c["name"], f"{c['items_per_s']:.3f}", f"{c['median_s']:.2f}",
                     fmt_mib(max(c["peak_bytes"])), ratio, over])
    return rows


def header_lines(report: dict) -> list[str]:
    """Command, machine, load, checkpoint and inputs of a run."""
    m = report["machine"]
    return [
        f"Command: `{report.get('command', 'python -m bench.throughput')}`, {report.get('date', '')}.",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} with "
        f"{m['torch_threads']} threads, Python {m['python']}; load average at start "
        f"{m['load_avg_start'][0]:.2f}, at end {m.get('load_avg_end', [float('nan')])[0]:.2f}; process CPU time "
        f"{m.get('cpu_s', 0):.0f} s, wall {m.get('wall_s', 0):.0f} s, max RSS {m.get('max_rss_mib', 0):.0f} MiB.",
        f"Checkpoint: random `{report['size']}` Qwen2-Audio ({report['params_m']:.1f} M parameters), float32. "
        f"{report['reps']} alternating repetitions{' after a warm-up' if report['warmup'] else ', no warm-up'}; "
        "medians. Peak MiB = peak RSS growth during a run over the level before it (weights and inputs "
        "already resident; sampled every 5 ms), max over repetitions.",
        f"Spoken-MMLU inputs: {report['mc_source']}, lengths min/median/max {report['mc_lengths']}. "
        f"ASR inputs: LJ Speech clips ({report['asr_lengths']}), greedy.",
    ]


def render(report: dict) -> str:
    """The markdown report (bench/README.md): header, the main table, checks, the time breakdown."""
    lines = header_lines(report) + [""]
    ll, gen, tts = report.get("ll"), report.get("gen"), report.get("tts")
    rows = []
    if ll:
        rows += case_rows(f"1. spoken-MMLU loglikelihood (batch {ll['batch_size']})", ll["cases"])
    if gen:
        rows += case_rows(f"2. ASR generation ({gen['max_gen_toks']} new tokens)", gen["cases"])
    if tts:
        rows += case_rows("3. speech synthesis (clips)", tts["cases"])
    arch = report.get("arch")
    if arch:
        rows += case_rows(f"5. spoken-MMLU loglikelihood, tiny {arch['arch']} ({arch['params_m']:.2f} M)", arch["cases"])
    lines.append(table(rows, ["case", "configuration", "items/s", "median s", "peak MiB", "ratio", "/ floor"]))
    lines.append("")
    if ll:
        lines += [
            f"- Audio-encoder calls per spoken-MMLU item: {ll['encoder_calls_per_item']:g} (own length), "
            f"{ll['encoder_calls_per_item_30s']:g} (30 s); naive: 4 (one per letter).",
            f"- Letter logprobs, ours vs naive: max |diff| {ll['max_abs_diff_vs_naive']:.2e} (own length), "
            f"{ll['max_abs_diff_30s_vs_naive']:.2e} (30 s); greedy flags agree: {ll['greedy_agree_vs_naive']}"
            + (f"; compute floor vs naive {ll['max_abs_diff_floor_vs_naive']:.2e} (its encoder sees the clip "
               "alone, without the 30 s window's padding frames)" if "max_abs_diff_floor_vs_naive" in ll else "")
            + ".",
        ]
        floor = _case(ll["cases"], FLOOR)
        if floor:
            lines.append("- Spoken-MMLU floor parts (last repetition, s): " + ", ".join(
                f"{k} {v:.3f}" for k, v in floor["parts_s"].items() if v))
    if gen:
        lines += [
            f"- ASR: best qwen2audio = {gen['best_ours']}, best lm-eval = {gen['best_lmeval']}"
            + (f", best hf-audio = {gen['best_hf_audio']}" if "best_hf_audio" in gen else "")
            + (f", best floor = {gen['best_floor']}" if "best_floor" in gen else "") + ".",
            "- Transcripts identical to qwen2audio's batch-1 output: "
            + ", ".join(f"{c['name']}: {c['identical_to_ours_b1']}/{gen['n_clips']}" for c in gen["cases"]) + ".",
        ]
    if tts:
        lines.append(f"- TTS: cold run synthesised {tts['cold_made']} clips; cached run reused {tts['cached_reused']}.")
    r = ratios(report)  # recomputed from the cases, so older saved runs render too
    if r:
        lines.append("- Ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()) + ".")
    if "bd" in report:
        lines += ["", f"4. Where the time of one spoken-MMLU batch goes ({report['bd']['items']} items, "
                  "qwen2audio, medians, seconds):", ""]
        comps = report["bd"]["components"]
        keys = [k for k in comps["own-length encoder"] if k != "total"] + ["total"]
        rows = []
        for k in keys:
            row = [k]
            for variant in comps:
                v, tot = comps[variant].get(k, 0.0), comps[variant]["total"]
                row.append(f"{v:.3f} ({100 * v / tot:.0f}%)")
            rows.append(row)
        lines.append(table(rows, ["component", *comps.keys()]))
    if report.get("patches"):
        lines += ["", "lm-eval's hf-audiolm-qwen was patched only as follows: " + "; ".join(report["patches"]) + "."]
    return "\n".join(lines)


def readme_table(report: dict) -> str:
    """The README's short table: each headline ratio with its two times and peak memory."""
    r = ratios(report)  # recomputed from the cases, so older saved runs render too
    rows = []

    def row(case, cls, c, base, ratio, floor_key):
        floor = r.get(floor_key)
        rows.append([case, cls, f"{c['median_s']:.2f} s", fmt_mib(max(c["peak_bytes"])),
                     f"{base['name']}, {base['median_s']:.2f} s" if base else "", f"{ratio:.2f}x" if ratio else "",
                     f"{floor:.2f}" if floor else ""])

    ll = report.get("ll")
    if ll:
        cs = ll["cases"]
        naive = _case(cs, NAIVE_LL)
        case = f"spoken-MMLU loglikelihood, {ll['requests'] // 4} items ({report['mc_lengths']})"
        row(case, "`qwen2audio`", _case(cs, QWEN_LL), naive, r["ll_qwen2audio_speedup_vs_naive"],
            "ll_qwen2audio_over_floor")
        if _case(cs, HF_LL):
            row("", "`hf-audio`", _case(cs, HF_LL), naive, r["ll_hf_audio_speedup_vs_naive"], "ll_hf_audio_over_floor")
        if _case(cs, FLOOR):
            row("", "compute floor", _case(cs, FLOOR), None, None, None)
    gen = report.get("gen")
    if gen:
        cs = gen["cases"]
        lm = _best(cs, "lm-eval")
        case = f"ASR generation, {gen['n_clips']} clips, {gen['max_gen_toks']} tokens, best batch"
        q = _best(cs, "qwen2audio, batch")
        row(case, f"`qwen2audio`, {q['name'].split(', ')[-1]}", q, lm, r["gen_best_qwen2audio_speedup_vs_lmeval_best"],
            "gen_best_qwen2audio_over_floor")
        h = _best(cs, "hf-audio, batch")
        if h:
            row("", f"`hf-audio`, {h['name'].split(', ')[-1]}", h, lm, r["gen_best_hf_audio_speedup_vs_lmeval_best"],
                "gen_best_hf_audio_over_floor")
        f = _best(cs, FLOOR)
        if f:
            row("", f"compute floor, {f['name'].split(', ')[-1]}", f, None, None, None)
    return table(rows, ["case", "configuration", "median", "peak MiB", "baseline", "speed-up", "/ floor"])


def to_json(report: dict) -> dict:
    """The report with measured cases flattened to plain data."""
    def conv(x):
        if isinstance(x, Case):
            return {"name": x.name, "items": x.items, "seconds": x.seconds, "median_s": x.median_s,
                    "items_per_s": x.items_per_s, "peak_bytes": x.peak_bytes, "baseline": x.baseline,
                    **x.extra}
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        if hasattr(x, "__dict__") and not isinstance(x, type):
            return {k: conv(v) for k, v in vars(x).items()}
        return x
    return conv(report)


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a one-minute smoke run (fewer items, one repetition)")
    p.add_argument("--size", default="small", choices=["tiny", "small"], help="random checkpoint size")
    p.add_argument("--model-dir", type=Path, help="reuse (or build into) this checkpoint folder")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, help="repetitions per case (default 3; quick 1)")
    p.add_argument("--items", type=int, help="spoken-MMLU items (default 4; quick 2)")
    p.add_argument("--clips", type=int, help="ASR clips (default 8; quick 2)")
    p.add_argument("--tts-texts", type=int, help="texts for the TTS case (default 8; quick 3)")
    p.add_argument("--ll-batch", type=int, default=4, help="loglikelihood batch size (rows), ours and naive")
    p.add_argument("--gen-batches", default=None, help="comma-separated ASR batch sizes (default 1,4,8; quick 1,2)")
    p.add_argument("--lmeval-batches", default=None,
                   help="batch sizes for lm-eval's class (default 4,8: batch 1 is slower still; quick 2)")
    p.add_argument("--max-gen-toks", type=int, help="new tokens per transcript (default 24; quick 8)")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up run (quick mode's default)")
    p.add_argument("--other-arch", default="audioflamingo3", help="architecture of case 5 (tiny checkpoint)")
    p.add_argument("--cases", default="ll,gen,tts,bd,arch",
                   help="which cases to run: ll (1), gen (2), tts (3), bd (4), arch (5); default all")
    p.add_argument("--json", type=Path, help="also write the results here as JSON")
    p.add_argument("--no-floor", action="store_true", help="leave out the compute floor (bench/floor.py)")
    p.add_argument("--from-json", type=Path, help="measure nothing: print the report of a saved --json run")
    p.add_argument("--readme", action="store_true", help="with --from-json: print the README's short table")
    a = p.parse_args(argv)
    q = a.quick
    a.reps = a.reps or (1 if q else 3)
    a.items = a.items or (2 if q else 4)
    a.clips = a.clips or (2 if q else 8)
    a.warmup = not (a.no_warmup or q)
    a.cases = set(a.cases.split(","))
    unknown = a.cases - {"ll", "gen", "tts", "bd", "arch"}
    if unknown:
        p.error(f"unknown cases {sorted(unknown)}")
    a.tts_texts = a.tts_texts or (3 if q else 8)
    a.max_gen_toks = a.max_gen_toks or (8 if q else 24)
    a.lmeval_batches = [int(x) for x in (a.lmeval_batches or ("2" if q else "4,8")).split(",")]
    a.gen_batches = [int(x) for x in (a.gen_batches or ("1,2" if q else "1,4,8")).split(",")]
    return a


def main(argv: list[str] | None = None) -> int:
    """Run every case and print the markdown report."""
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(readme_table(saved) if args.readme else render(saved))
        return 0
    started, cpu0 = time.perf_counter(), time.process_time()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("httpx", "urllib3", "lm_eval", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from bench.patched_hf_audiolm import PATCHES, patched_class
    from lm_eval_audio.audio import decode_audio
    from lm_eval_audio.data.seed_mmlu import spoken_text as speech_text
    from lm_eval_audio.models.hf_audio import HFAudioLM
    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM
    from lm_eval_audio.tiny.qwen2_audio import build_tiny_model

    report: dict[str, Any] = {"command": " ".join(["python -m bench.throughput", *(argv if argv is not None else sys.argv[1:])]),
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine(), "size": args.size, "reps": args.reps, "warmup": args.warmup,
                              "patches": PATCHES}
    with tempfile.TemporaryDirectory(prefix="lm-eval-audio-bench-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or work / f"qwen2audio-{args.size}"
        if not (model_dir / "config.json").is_file():
            build_tiny_model(model_dir, size=args.size)

        docs = mmlu_docs(max(args.items, args.tts_texts))
        try:
            mc_clips, report["mc_source"] = spoken_mmlu_clips(docs[: args.items], work / "tts-mc")
        except (ImportError, OSError, RuntimeError) as e:
            logger.warning("espeak synthesis unavailable (%s); using concatenated LJ Speech clips", e)
            mc_clips, report["mc_source"] = concatenated_lj_clips(args.items, work / "lj-concat")
        report["mc_lengths"] = describe_lengths(clip_seconds(mc_clips))
        asr_paths = lj_clips(SHARED_DATA / "speech", args.clips)
        asr_arrays = [decode_audio(p) for p in asr_paths]
        report["asr_lengths"] = describe_lengths([len(a) / 16_000 for a in asr_arrays])

        common = dict(pretrained=str(model_dir), device="cpu", dtype="float32")
        ours = Qwen2AudioLM(batch_size=args.ll_batch, **common)
        hf_lm = HFAudioLM(batch_size=args.ll_batch, **common)
        report["params_m"] = sum(p.numel() for p in ours.model.parameters()) / 1e6
        floor_model = None if args.no_floor else load_floor_model(str(model_dir))

        def save() -> None:
            # After every case: a failure later in a long run keeps what was measured.
            if args.json:
                args.json.write_text(json.dumps(to_json(report), indent=2, default=str))

        if "ll" in args.cases:
            logger.info("case 1: spoken-MMLU loglikelihood")
            report["ll"] = case_loglikelihood(ours, mc_clips, args.ll_batch, args.reps, args.warmup, hf_lm=hf_lm,
                                              floor_model=floor_model)
            save()
        if "gen" in args.cases:
            logger.info("case 2: ASR generation")
            lmeval = patched_class()(batch_size=1, **common)
            report["gen"] = case_generation(ours, lmeval, asr_arrays, args.gen_batches, args.lmeval_batches,
                                            args.max_gen_toks, args.reps, args.warmup, hf_lm=hf_lm,
                                            floor_model=floor_model)
            save()
            del lmeval
        if "arch" in args.cases:
            logger.info("case 5: another architecture (%s)", args.other_arch)
            report["arch"] = case_other_arch(args.other_arch, mc_clips, args.ll_batch, args.reps, args.warmup, work)
            save()
        if "tts" in args.cases:
            logger.info("case 3: speech synthesis")
            report["tts"] = case_tts([speech_text(d) for d in docs[: args.tts_texts]], work, args.reps, args.warmup)
            save()
        if "bd" in args.cases:
            logger.info("case 4: time breakdown")
            ours.batch_size_per_gpu = args.ll_batch
            report["bd"] = case_breakdown(ours, mc_clips, args.ll_batch, args.reps, args.warmup)
            save()

    report["machine"].update(load_avg_end=os.getloadavg(), cpu_s=time.process_time() - cpu0,
                             wall_s=time.perf_counter() - started,
                             max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    saved = to_json(report)
    saved["ratios"] = ratios(saved)
    print(render(saved))
    print("\nREADME table:\n\n" + readme_table(saved))
    if args.json:
        args.json.write_text(json.dumps(saved, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
