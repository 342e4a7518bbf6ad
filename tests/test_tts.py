"""Speech synthesis: espeak in process, the content-addressed cache, atomic writes, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.audio import decode_audio
from lm_eval_audio.tts import ClipMissingError, Synthesizer, TTSConfig
from lm_eval_audio.tts.cache import ClipCache, ClipSpec, atomic_write_bytes


def test_espeak_clip_is_real_speech(tmp_path):
    synth = Synthesizer(TTSConfig(cache_dir=tmp_path))
    path = synth.clip("Which planet is known as the red planet? A. Venus. B. Mars.")
    info = sf.info(str(path))
    assert info.samplerate == 22050 and info.channels == 1
    assert 2.0 < info.duration < 15.0
    audio = decode_audio(str(path))  # the project's one decoder reads it: 16 kHz mono float32
    assert audio.dtype == np.float32 and np.abs(audio).max() > 0.05
    assert synth.stats.made == 1 and synth.stats.reused == 0


def test_cache_reuses_and_keys_on_everything_that_changes_the_sound(tmp_path):
    a = Synthesizer(TTSConfig(cache_dir=tmp_path))
    p1 = a.clip("two plus two")
    p2 = a.clip("two plus two")
    assert p1 == p2 and a.stats.made == 1 and a.stats.reused == 1
    assert a.clip("two plus three") != p1  # text
    b = Synthesizer(TTSConfig(cache_dir=tmp_path, voice="en+f3"))
    assert b.clip("two plus two") != p1  # voice
    c = Synthesizer(TTSConfig(cache_dir=tmp_path, rate=140))
    assert c.clip("two plus two") != p1  # engine option
    # a fresh synthesizer (a rerun) finds everything
    again = Synthesizer(TTSConfig(cache_dir=tmp_path))
    assert again.clip("two plus two") == p1 and again.stats.made == 0
    base = ClipSpec("openai", "gpt-4o-mini-tts", "alloy", "Speak.", "hi")
    keys = {base.key, ClipSpec("openai", "tts-1", "alloy", "Speak.", "hi").key,
            ClipSpec("openai", "gpt-4o-mini-tts", "alloy", "Whisper.", "hi").key}
    assert len(keys) == 3  # model and instructions too


def test_synthesis_off_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_AUDIO_SYNTH", "0")
    synth = Synthesizer(TTSConfig.from_env(cache_dir=tmp_path))
    with pytest.raises(ClipMissingError, match=r"MMLU item x/1.*lm-eval-audio synth --task spoken_mmlu_seed --backend espeak"):
        synth.clip("never synthesised", name="MMLU item x/1", hint="lm-eval-audio synth --task spoken_mmlu_seed")
    monkeypatch.setenv("LM_EVAL_AUDIO_SYNTH", "maybe")
    with pytest.raises(ValueError, match="LM_EVAL_AUDIO_SYNTH"):
        TTSConfig.from_env()


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown TTS backend"):
        TTSConfig(backend="festival", cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="no voice 'no-such-voice'"):
        Synthesizer(TTSConfig(cache_dir=tmp_path, voice="no-such-voice")).clip("hello")


def test_killed_writer_leaves_no_valid_looking_clip(tmp_path):
    """A process killed in the middle of a write must not leave a clip under its final name."""
    target = tmp_path / "ab" / "clip.flac"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import lm_eval_audio.tts.cache as c\n"
        "real_fdopen = os.fdopen\n"
        "class Dying:\n"
        "    def __init__(self, f): self.f = f\n"
        "    def __enter__(self): return self\n"
        "    def __exit__(self, *a): return False\n"
        "    def write(self, data):\n"
        "        self.f.write(data[: len(data) // 2]); self.f.flush(); os._exit(9)\n"
        "c.os.fdopen = lambda fd, mode: Dying(real_fdopen(fd, mode))\n"
        f"c.atomic_write_bytes(Path({str(target)!r}), b'x' * 100000)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == 9
    assert not target.exists()  # only a *.tmp remains, which the cache never reads
    assert [p.suffix for p in target.parent.iterdir()] == [".tmp"]
    cache = ClipCache(tmp_path)
    spec = ClipSpec("espeak", None, "en-us", None, "text")
    assert cache.get(spec) is None
    atomic_write_bytes(target, b"done")
    assert target.read_bytes() == b"done"


def test_synth_cli_reports_made_reused_failed(tmp_path, cli_env):
    env = dict(cli_env, LM_EVAL_AUDIO_TTS_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "lm_eval_audio.cli", "synth", "--task", "spoken_mmlu_seed", "--backend", "espeak",
           "--limit", "3"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "made 3, reused 0, failed 0" in first.stderr + first.stdout
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "made 0, reused 3, failed 0" in second.stderr + second.stdout
    assert len(list((tmp_path / "cache").rglob("*.flac"))) == 3
