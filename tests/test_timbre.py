"""timbre_range_synth (determinism, exact labels, atomic cache), the timbre-range loaders, the
`label_index` filter, and qwen2audio on every timbre task through the real lm_eval CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.data import timbre
from lm_eval_audio.data._common import build_dir_once
from lm_eval_audio.filters.label import INVALID, LabelIndexFilter

SMALL = timbre.SynthConfig(sizes=(("train", 6), ("validation", 3), ("test", 6)))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A private cache folder for this module (generated clips, materialised hub audio)."""
    path = tmp_path_factory.mktemp("lm_eval_audio_cache")
    old = os.environ.get("LM_EVAL_AUDIO_CACHE")
    os.environ["LM_EVAL_AUDIO_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LM_EVAL_AUDIO_CACHE", None)
    else:
        os.environ["LM_EVAL_AUDIO_CACHE"] = old


def _digests(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


# --- timbre_range_synth ---------------------------------------------------------------------


def test_synth_is_deterministic_balanced_and_reused(tmp_path):
    a = timbre.synth_dir(SMALL, root=tmp_path / "a")
    b = timbre.synth_dir(SMALL, root=tmp_path / "b")
    assert _digests(a) == _digests(b) and len(_digests(a)) == 6 + 3 + 6 + 3  # clips + 3 metadata files
    marker = a / "manifest.json"
    before = marker.stat().st_mtime_ns
    assert timbre.synth_dir(SMALL, root=tmp_path / "a") == a
    assert marker.stat().st_mtime_ns == before  # reused, not rebuilt

    dd = timbre.load_local(a)
    assert {s: len(dd[s]) for s in dd} == {"train": 6, "validation": 3, "test": 6}
    for split in dd:
        counts = np.bincount(dd[split]["label"], minlength=3)
        assert counts.max() - counts.min() <= 1, (split, counts)
    row = dd["test"][0]
    assert row["label_name"] == timbre.LABELS[row["label"]]
    assert max(row["notes_midi"]) - min(row["notes_midi"]) == row["span_semitones"]
    lo, hi = SMALL.spans[row["label"]]
    assert lo <= row["span_semitones"] <= hi
    info = sf.info(row["audio"]["path"])
    assert info.samplerate == 16_000 and info.channels == 1 and 1.0 < info.duration < 3.5


def test_synth_labels_are_exact_in_the_audio():
    """The pitch span measured on the audio alone (YIN) falls in the class that the label names."""
    import librosa

    for i in range(12):
        label = i % 3
        audio, facts = timbre.synth_clip(np.random.default_rng([7, i]), label, SMALL)
        f0 = librosa.yin(audio, fmin=80, fmax=900, sr=16_000, frame_length=1024, hop_length=256)
        midi = np.round(librosa.hz_to_midi(f0))  # vibrato stays well under half a semitone
        span = np.percentile(midi, 97) - np.percentile(midi, 3)
        assert span == facts["span_semitones"], (i, span, facts)
        lo, hi = SMALL.spans[label]
        assert lo <= span <= hi


def test_only_the_span_separates_the_classes():
    """Centre pitch and length are drawn independently of the label (no shortcut to learn)."""
    stats = {0: [], 1: [], 2: []}
    for i in range(90):
        label = i % 3
        audio, facts = timbre.synth_clip(np.random.default_rng([11, i]), label, SMALL)
        stats[label].append((np.mean(facts["notes_midi"]), audio.shape[0] / 16_000))
    centres = [np.mean([c for c, _ in stats[k]]) for k in stats]
    lengths = [np.mean([d for _, d in stats[k]]) for k in stats]
    assert max(centres) - min(centres) < 1.5, centres
    assert max(lengths) / min(lengths) < 1.15, lengths


def test_build_dir_once_leaves_nothing_behind_when_interrupted(tmp_path):
    target = tmp_path / "data"

    def crash(tmp: Path) -> None:
        (tmp / "half.flac").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dir_once(target, crash, complete_marker="done")
    assert not target.exists() and list(tmp_path.iterdir()) == []

    def good(tmp: Path) -> None:
        (tmp / "done").write_text("ok")

    assert build_dir_once(target, good, complete_marker="done") == target
    assert (target / "done").read_text() == "ok"


# --- real-data loaders (local folder layouts, hub copy) --------------------------------------


def _tone(path: Path, sr: int = 44_100, channels: int = 1, seconds: float = 0.5) -> None:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)


def test_local_audio_folder_with_label_names_and_digits(tmp_path):
    for split, label_dirs in (("train", ("narrow", "wide")), ("test", ("0", "1", "2"))):
        for name in label_dirs:
            (tmp_path / split / name).mkdir(parents=True)
            _tone(tmp_path / split / name / f"{split}-{name}.wav", channels=2)
    dd = timbre.load_local(tmp_path)
    assert sorted(dd["train"]["label_name"]) == ["narrow", "wide"]
    assert dd["test"]["label"] == [0, 1, 2]
    assert all(Path(a["path"]).is_file() and len(a["sha256"]) == 64 for a in dd["test"]["audio"])


def test_local_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "train" / "narrow").mkdir(parents=True)
    _tone(tmp_path / "train" / "narrow" / "a.wav")
    with pytest.raises(ValueError, match="no 'test' split"):
        timbre.load_local(tmp_path)
    (tmp_path / "test" / "huge").mkdir(parents=True)
    with pytest.raises(ValueError, match="unknown timbre-range label 'huge'"):
        timbre.load_local(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        timbre.load_local(tmp_path / "nope")


def test_metadata_file_names_must_stay_inside_their_folder(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        _tone(tmp_path / split / "a.wav")
        (tmp_path / split / "metadata.jsonl").write_text(json.dumps({"file_name": "a.wav", "label": 1}) + "\n")
    _tone(tmp_path / "outside.wav")
    assert timbre.load_local(tmp_path)["test"]["label"] == [1]
    for bad in ("../outside.wav", str(tmp_path / "outside.wav")):
        (tmp_path / "test" / "metadata.jsonl").write_text(json.dumps({"file_name": bad, "label": 1}) + "\n")
        with pytest.raises(ValueError, match=r"test/metadata.jsonl, line 1: file name .* resolves to "
                                             r".*outside.wav, outside its folder .*/test$"):
            timbre.load_local(tmp_path)


def _fake_hub_copy(root: Path) -> None:
    """The hub repository's layout: each split of config `range` a `save_to_disk` folder,
    44.1 kHz audio stored as bytes, a mel image column, ClassLabel Narrow/Moderate/Wide."""
    import io

    import datasets
    from PIL import Image

    def wav_bytes(freq: float) -> bytes:
        buf = io.BytesIO()
        t = np.arange(22_050) / 44_100
        sf.write(buf, 0.2 * np.sin(2 * np.pi * freq * t), 44_100, format="WAV")
        return buf.getvalue()

    img = Image.new("RGB", (4, 4))
    for split in ("train", "test"):
        rows = {"audio": [{"bytes": wav_bytes(200 + 50 * i), "path": None} for i in range(3)],
                "mel": [img] * 3, "label": [2, 0, 1]}
        ds = datasets.Dataset.from_dict(rows, features=datasets.Features({
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            "mel": datasets.Image(),
            "label": datasets.ClassLabel(names=["Narrow", "Moderate", "Wide"]),
        }))
        # Cast rather than encode: datasets 4+ wants torchcodec to *encode* audio, not to store bytes.
        ds = ds.cast_column("audio", datasets.Audio(sampling_rate=44_100))
        ds.save_to_disk(str(root / "range" / split))


def test_hub_copy_is_read_without_decoding_and_cached_as_files(tmp_path, cache_dir):
    _fake_hub_copy(tmp_path)
    dd = timbre.load_local(tmp_path)
    assert dd["test"]["label"] == [2, 0, 1] and dd["test"]["label_name"] == ["wide", "narrow", "moderate"]
    assert "mel" not in dd["test"].column_names
    refs = dd["test"]["audio"]
    assert all(Path(r["path"]).is_relative_to(cache_dir) for r in refs)
    from lm_eval_audio.audio import decode_audio

    assert decode_audio(refs[0]).shape == (8000,)  # 0.5 s resampled from 44.1 kHz to 16 kHz


def test_hub_route_fetches_only_the_range_config(tmp_path, cache_dir, monkeypatch):
    import huggingface_hub

    _fake_hub_copy(tmp_path)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    dd = timbre.load_timbre_range()
    assert calls == [("ccmusic-database/timbre_range",
                      {"repo_type": "dataset", "revision": None, "allow_patterns": ["range/**"]})]
    assert len(dd["train"]) == 3 and len(dd["test"]) == 3

    def offline(repo_id, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(RuntimeError, match="timbre_range_dir"):
        timbre.load_timbre_range()


# --- label_index filter ------------------------------------------------------------------------

FILTER_CASES = [
    ("2", "2"), ("2.", "2"), (" 1\n", "1"), ("Answer: 0", "0"), ("(1)", "1"), ("**2**", "2"),
    ("wide", "2"), ("Moderate.", "1"), ("NARROW", "0"), ("The range is wide.", "2"),
    ("2 (wide)", "2"), ("1 - moderate", "1"), ("Two", "2"), ("zero.", "0"),
    ("0 for narrow, 1 for moderate and 2 for wide", INVALID),  # prompt echoed back
    ("1 or 2", INVALID), ("2 - narrow", INVALID), ("3", INVALID), ("12", INVALID), ("2.5", INVALID),
    ("I cannot tell from this audio.", INVALID), ("", INVALID), ("one of them is wide", "2"),
]


@pytest.mark.parametrize("text,expected", FILTER_CASES)
def test_label_index_filter(text, expected):
    f = LabelIndexFilter(labels=["narrow", "moderate", "wide"])
    assert f.parse(text) == expected


def test_label_index_filter_shape_synonyms_and_bad_config():
    f = LabelIndexFilter(labels=["narrow", "moderate", "wide"], synonyms={"moderate": ["medium"]})
    assert f.apply([["medium", "x"], ["wide"]], [{}, {}]) == [["1", INVALID], ["2"]]
    with pytest.raises(ValueError, match="unknown label"):
        LabelIndexFilter(labels=["narrow"], synonyms={"broad": ["big"]})


# --- qwen2audio through the real lm_eval CLI on every timbre task ---------------------------


@pytest.mark.slow
def test_qwen2audio_runs_every_timbre_task_through_lm_eval(tiny_model_dir, cli_env, cache_dir, tmp_path):
    real = tmp_path / "timbre_range_copy"  # the real task's local-folder route, with known labels
    for split in ("train", "test"):
        for name in timbre.LABELS:
            (real / split / name).mkdir(parents=True)
            _tone(real / split / name / f"{split}-{name}.wav", channels=2)
    out = tmp_path / "out"
    tasks = ["timbre_range_synth", "timbre_range_synth_gen", "timbre_range", "timbre_range_gen"]
    cmd = [sys.executable, "-m", "lm_eval", "--model", "qwen2audio", "--model_args", f"pretrained={tiny_model_dir}",
           "--device", "cpu", "--tasks", ",".join(tasks), "--limit", "3", "--batch_size", "4",
           "--metadata", json.dumps({"timbre_range_dir": str(real)}), "--output_path", str(out), "--log_samples"]
    # One thread: on a tiny model thread hand-offs cost more than the matrix products.
    env = dict(cli_env, LM_EVAL_AUDIO_CACHE=str(cache_dir), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]

    def logged(task):
        (path,) = out.rglob(f"samples_{task}_20*.jsonl")
        return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda x: x["doc_id"])

    # Random weights score anything; what a user relies on is that each figure is computed from
    # the model's own answers on the right documents against their true labels.
    copy_labels = [0, 1, 2]  # the copy has one test clip per label
    for task in ("timbre_range_synth", "timbre_range"):
        rows = logged(task)
        assert [x["doc_id"] for x in rows] == [0, 1, 2]
        targets = [int(x["target"]) for x in rows]  # the samples file holds numbers as strings
        assert targets == [x["doc"]["label"] for x in rows]
        if task == "timbre_range":
            assert sorted(targets) == copy_labels
        chosen = [int(np.argmax([float(r[0]) for r in x["filtered_resps"]])) for x in rows]
        assert results[task]["acc,none"] == pytest.approx(np.mean([c == t for c, t in zip(chosen, targets)]))
    for task in ("timbre_range_synth_gen", "timbre_range_gen"):
        rows = logged(task)
        answers = [x["filtered_resps"][0] for x in rows]
        assert all(a in ("0", "1", "2", INVALID) for a in answers)
        assert results[task]["exact_match,label_index"] == pytest.approx(
            np.mean([a == str(x["doc"]["label"]) for a, x in zip(answers, rows)]))
        assert results[task]["parse_failure,label_index"] == pytest.approx(np.mean([a == INVALID for a in answers]))
        samples = [json.loads(line) for line in next(out.rglob(f"samples_{task}_*.jsonl")).read_text().splitlines()]
        assert len(samples) == 3
        for s in samples:
            assert s["filtered_resps"][0] in {"0", "1", "2", INVALID}
            assert s["target"] == str(s["doc"]["label"])
