"""Bring your own clips: the clips backend reads pre-made files (MP3, FLAC, ...) named by item
instead of synthesising, records the folder's content hash, and names a missing clip's item and
the file it expected; the seed preset's openai speech is MP3, as the seed's was."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.data.seed_mmlu import embedded_items
from lm_eval_audio.tts import ClipMissingError, Synthesizer, TTSConfig
from lm_eval_audio.tts.clips import ClipFolder
from lm_eval_audio.files import tasks_dir


def _tone(path, freq: float, fmt: str, subtype: str | None = None, sr: int = 24000) -> None:
    t = np.arange(int(sr * 1.0)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt, subtype=subtype)


@pytest.fixture
def clips(tmp_path):
    """The seed's first three items: two named by seed position (MP3 as the seed's were, FLAC),
    one by item id; the fourth item's clip is missing."""
    folder = tmp_path / "clips"
    folder.mkdir()
    _tone(folder / "question_0.mp3", 220, "MP3", "MPEG_LAYER_III")
    _tone(folder / "question_1.flac", 330, "FLAC")
    _tone(folder / "nutrition_236.flac", 440, "FLAC")  # the seed's third item, named by its id
    return folder


def test_seed_run_reads_the_clips_and_records_the_folder(clips, tiny_model_dir, tmp_path, monkeypatch):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

    monkeypatch.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path / "cache"))
    meta = {"tts_backend": "clips", "tts_clips_dir": str(clips)}
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=4)
    ours = str(tasks_dir())
    run = simple_evaluate(model=lm, tasks=["spoken_mmlu_seed_mc"], limit=3, log_samples=True, bootstrap_iters=0,
                          metadata=meta, task_manager=TaskManager(include_defaults=False, include_path=ours, metadata=meta))
    samples = sorted(run["samples"]["spoken_mmlu_seed_mc"], key=lambda s: s["doc_id"])
    heard = [s["arguments"][0][2]["audio"][0]["path"] for s in samples]
    assert heard == [str(clips / n) for n in ("question_0.mp3", "question_1.flac", "nutrition_236.flac")]
    assert [s["doc"]["mmlu_id"] for s in samples] == [i["mmlu_id"] for i in embedded_items()[:3]]
    tts = run["configs"]["spoken_mmlu_seed_mc"]["metadata"]["protocol"]["tts"]
    assert tts == {"backend": "clips", "clips_dir": str(clips), "clips_files": 3,
                   "clips_sha256": ClipFolder(clips).digest()}
    # The fourth item has no clip: the run stops, naming the item and the files it looked for.
    with pytest.raises(ClipMissingError, match=r"MMLU item nutrition/173: no clip in the clips folder; expected "
                       rf"{clips}/question_3\.<ext> or {clips}/nutrition_173\.<ext>"):
        simple_evaluate(model=lm, tasks=["spoken_mmlu_seed_mc"], limit=4, bootstrap_iters=0, metadata=meta,
                        task_manager=TaskManager(include_defaults=False, include_path=ours, metadata=meta))


def test_both_formats_decode_and_the_hash_follows_the_content(clips):
    from lm_eval_audio.audio import decode_audio

    synth = Synthesizer(TTSConfig(backend="clips", clips_dir=clips))
    mp3 = synth.clip("ignored: the file is the clip", name="item 0", stems=("question_0",))
    flac = synth.clip("", name="item 1", stems=("question_1",))
    for path, freq in ((mp3, 220), (flac, 330)):
        audio = decode_audio(str(path))  # 16 kHz mono
        assert abs(len(audio) - 16000) < 1200  # MP3 pads a frame or so
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
        assert abs(peak - freq) < 5
    before = ClipFolder(clips).digest()
    _tone(clips / "question_1.flac", 660, "FLAC")
    assert ClipFolder(clips).digest() != before


def test_bad_clip_settings_are_refused(clips, tmp_path):
    with pytest.raises(ValueError, match="clips backend needs a folder"):
        TTSConfig(backend="clips")
    with pytest.raises(ValueError, match="takes no voice"):
        TTSConfig(backend="clips", clips_dir=clips, voice="alloy")
    with pytest.raises(FileNotFoundError, match="clips folder not found"):
        Synthesizer(TTSConfig(backend="clips", clips_dir=tmp_path / "nowhere"))
    _tone(clips / "question_0.wav", 220, "WAV")
    with pytest.raises(ClipMissingError, match=r"several clips for one item.*question_0\.mp3', 'question_0\.wav"):
        Synthesizer(TTSConfig(backend="clips", clips_dir=clips)).clip("", name="item 0", stems=("question_0",))


def test_seed_preset_speech_is_mp3_or_your_clips(clips):
    from lm_eval_audio.reproduce import SeedConfig, speech_environment

    assert speech_environment(SeedConfig()) == {"LM_EVAL_AUDIO_TTS_BACKEND": "openai",
                                                "LM_EVAL_AUDIO_TTS_FORMAT": "mp3"}
    env = speech_environment(SeedConfig(tts_backend="clips", clips_dir=str(clips)))
    assert env == {"LM_EVAL_AUDIO_TTS_BACKEND": "clips", "LM_EVAL_AUDIO_TTS_CLIPS_DIR": str(clips)}
    with pytest.raises(ValueError, match="needs clips_dir"):
        speech_environment(SeedConfig(tts_backend="clips"))
