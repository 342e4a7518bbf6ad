"""The one audio decoder: formats, down-mixing, resampling, and errors that name the item."""

import numpy as np
import pytest
import soundfile as sf

from lm_eval_audio.audio import (
    AudioError,
    audio_ref,
    clip_key,
    decode_audio,
    limit_length,
)


def test_stereo_44k_file_becomes_16k_mono(shared_data, tmp_path):
    # A 44.1 kHz stereo FLAC like the JFK clip, made from a real LJ Speech recording.
    speech, sr = sf.read(str(next((shared_data / "speech" / "ljspeech" / "wavs").glob("*.flac"))))
    import soxr

    speech44 = soxr.resample(speech, sr, 44100)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), np.stack([speech44, 0.5 * speech44], axis=1), 44100)
    info = sf.info(str(path))
    assert info.channels == 2 and info.samplerate == 44100
    audio = decode_audio(str(path))
    assert audio.ndim == 1 and audio.dtype == np.float32
    assert abs(len(audio) / 16000 - info.duration) < 0.01
    # Down-mixed (mean of channels), then resampled: 0.75 x the original's level.
    ref16 = soxr.resample(speech, sr, 16000)
    n = min(len(ref16), len(audio))
    assert np.corrcoef(audio[:n], ref16[:n])[0, 1] > 0.99
    # Same result through every input form.
    np.testing.assert_array_equal(decode_audio(audio_ref(path)), audio)
    np.testing.assert_array_equal(decode_audio({"bytes": path.read_bytes(), "path": None}), audio)


def test_array_forms(tmp_path):
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = decode_audio({"array": tone, "sampling_rate": 22050})
    assert len(out) == 16000
    # int16 PCM is scaled to [-1, 1); channels-first stereo is down-mixed.
    pcm = (tone * 32767).astype(np.int16)
    np.testing.assert_allclose(decode_audio({"array": pcm, "sampling_rate": 22050}), out, atol=1e-3)
    stereo = np.stack([tone, tone])
    np.testing.assert_allclose(decode_audio({"array": stereo, "sampling_rate": 22050}), out, atol=1e-6)


@pytest.mark.parametrize(
    "item, message",
    [
        ({"array": np.zeros(0, np.float32), "sampling_rate": 16000}, "empty"),
        ({"array": np.array([0.1, np.nan], np.float32), "sampling_rate": 16000}, "NaN"),
        ({"array": np.zeros(10, np.float32)}, "sampling_rate"),
        ({"array": np.zeros(10, np.float32), "sampling_rate": 0}, "sampling_rate"),
        ("/nonexistent/clip.flac", "not found"),
    ],
)
def test_bad_audio_raises_naming_the_item(item, message):
    with pytest.raises(AudioError, match=message) as err:
        decode_audio(item, name="doc 7 of my_task")
    assert "doc 7 of my_task" in str(err.value)


def test_corrupt_file_raises(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match="doc 3.*(unreadable|corrupt)"):
        decode_audio(str(bad), name="doc 3")


def test_clip_key_follows_content():
    a = {"array": np.ones(100, np.float32), "sampling_rate": 16000}
    b = {"array": np.ones(100, np.float32), "sampling_rate": 16000}
    c = {"array": -np.ones(100, np.float32), "sampling_rate": 16000}
    assert clip_key(a) == clip_key(b) != clip_key(c)


def test_long_clip_policy():
    clip = np.zeros(16000 * 31, np.float32)
    cut, truncated = limit_length(clip, max_seconds=30, policy="truncate", name="doc 1")
    assert truncated and len(cut) == 16000 * 30
    with pytest.raises(AudioError, match="doc 1.*31.0 s"):
        limit_length(clip, max_seconds=30, policy="error", name="doc 1")
