"""Smoke test of the throughput benchmark: its quick mode on the tiny checkpoint.

Asserts the structural facts the benchmark's speed claims rest on, never timings: each spoken
question is encoded once, our transcripts do not depend on the batch size, and our letter
scores equal the naive per-request forward's.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_quick_benchmark_facts(tiny_model_dir, test_data, cli_env, tmp_path):
    out = tmp_path / "bench.json"
    cli_env["LM_EVAL_AUDIO_SHARED_DATA"] = str(test_data)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--quick", "--size", "tiny",
         "--model-dir", str(tiny_model_dir), "--json", str(out)],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    ll = report["ll"]
    assert ll["encoder_calls_per_item"] == 1
    assert ll["encoder_calls_per_item_30s"] == 1
    assert ll["max_abs_diff_vs_naive"] <= 1e-4
    assert ll["max_abs_diff_30s_vs_naive"] <= 1e-4
    assert ll["greedy_agree_vs_naive"]

    gen = report["gen"]
    assert gen["transcripts_best"] == gen["transcripts_b1"]
    assert gen["ours_all_identical_to_b1"]
    assert len(gen["transcripts_b1"]) == gen["n_clips"] and all(gen["transcripts_b1"])

    # The compute floor computes the same answers (its encoder sees each clip alone, so its
    # letter scores differ from the 30 s window's in the last digits only).
    assert ll["max_abs_diff_floor_vs_naive"] <= 1e-2
    # Random weights make greedy ties fragile: the floor's encoder, which never sees padding
    # frames, may flip one token of one clip.
    floors = [c for c in gen["cases"] if c["name"].startswith("compute floor")]
    assert floors and all(c["identical_to_ours_b1"] >= gen["n_clips"] - 1 for c in floors)
    assert set(report["ratios"]) >= {
        "ll_qwen2audio_speedup_vs_naive", "ll_hf_audio_speedup_vs_naive", "ll_hf_audio_over_qwen2audio_time_ratio",
        "ll_qwen2audio_over_floor", "ll_hf_audio_over_floor", "gen_best_qwen2audio_speedup_vs_lmeval_best",
        "gen_best_hf_audio_speedup_vs_lmeval_best", "gen_best_hf_audio_speedup_vs_hf_audio_batch1",
        "gen_best_hf_audio_over_qwen2audio_time_ratio", "gen_best_qwen2audio_over_floor",
        "gen_best_hf_audio_over_floor"}
    assert all(v > 0 for v in report["ratios"].values())
    assert all(max(c["peak_bytes"]) >= 0 for c in ll["cases"] + gen["cases"])

    assert report["tts"]["cold_made"] == report["tts"]["cached_reused"] > 0
    # The table is printed with every case and the patch list of lm-eval's class.
    assert "naive per-request forward" in proc.stdout
    assert "hf-audiolm-qwen (patched)" in proc.stdout
    assert "audios= renamed to audio=" in proc.stdout
