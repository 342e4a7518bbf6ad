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


def test_stereo_44k_file_becomes_16k_mono(test_data, tmp_path):
    # A 44.1 kHz stereo FLAC like the JFK clip, made from a real LJ Speech recording.
    speech, sr = sf.read(str(next((test_data / "speech" / "ljspeech" / "wavs").glob("*.flac"))))
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


def _empty_wav(path, channels=1):
    sf.write(str(path), np.zeros((0, channels), np.float32), 16000)
    assert sf.info(str(path)).frames == 0
    return str(path)


BAD_AUDIO = [
    (lambda tmp: {"array": np.zeros(0, np.float32), "sampling_rate": 16000},
     "doc 7 of my_task: audio clip is empty (0 samples)"),
    (lambda tmp: _empty_wav(tmp / "empty.wav"), "doc 7 of my_task: audio clip is empty (0 samples)"),
    (lambda tmp: _empty_wav(tmp / "empty_stereo.wav", channels=2), "doc 7 of my_task: audio clip is empty (0 samples)"),
    (lambda tmp: {"array": np.array([0.1, np.nan], np.float32), "sampling_rate": 16000},
     "doc 7 of my_task: audio contains NaN or infinite samples"),
    (lambda tmp: {"array": np.array([0.1, np.inf], np.float32), "sampling_rate": 16000},
     "doc 7 of my_task: audio contains NaN or infinite samples"),
    (lambda tmp: {"array": np.zeros(10, np.float32)},
     "doc 7 of my_task: audio array has no valid sampling_rate (got None)"),
    (lambda tmp: {"array": np.zeros(10, np.float32), "sampling_rate": 0},
     "doc 7 of my_task: audio array has no valid sampling_rate (got 0)"),
    (lambda tmp: {"array": np.zeros((2, 2, 2), np.float32), "sampling_rate": 16000},
     "doc 7 of my_task: audio array must be 1-D or 2-D, got shape (2, 2, 2)"),
    (lambda tmp: "/nonexistent/clip.flac", "doc 7 of my_task: audio file not found: /nonexistent/clip.flac"),
    (lambda tmp: {"sha256": "ab"}, "doc 7 of my_task: audio item has neither array, bytes nor path: {sha256: str}"),
    (lambda tmp: 42, "doc 7 of my_task: unsupported audio item 42"),
]


@pytest.mark.parametrize("make, message", BAD_AUDIO)
def test_bad_audio_raises_naming_the_item_and_the_fault(make, message, tmp_path):
    with pytest.raises(AudioError) as err:
        decode_audio(make(tmp_path), name="doc 7 of my_task")
    assert str(err.value) == message


def test_clip_key_follows_content():
    a = {"array": np.ones(100, np.float32), "sampling_rate": 16000}
    b = {"array": np.ones(100, np.float32), "sampling_rate": 16000}
    c = {"array": -np.ones(100, np.float32), "sampling_rate": 16000}
    assert clip_key(a) == clip_key(b) != clip_key(c)


def test_file_clips_key_on_content_hashed_once_per_version(tmp_path, monkeypatch):
    import os

    import soundfile as sf

    from lm_eval_audio import audio

    reads = []
    real = audio.file_digest
    monkeypatch.setattr(audio, "file_digest", lambda p: reads.append(p) or real(p))
    one, two = tmp_path / "one.wav", tmp_path / "two.wav"
    sf.write(one, np.ones(800, np.float32) * 0.5, 16000, subtype="FLOAT")
    sf.write(two, np.ones(800, np.float32) * 0.5, 16000, subtype="FLOAT")
    first = clip_key(str(one))
    assert clip_key({"path": str(one)}) == clip_key(one) == first == clip_key(str(two))  # content, not place
    assert len(reads) == 2  # one read per file, however often it is named
    sf.write(one, np.ones(800, np.float32) * -0.5, 16000, subtype="FLOAT")  # rewritten in place, same size
    st = os.stat(one)
    os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert clip_key(str(one)) != first and len(reads) == 3
    with pytest.raises(AudioError, match=r"^doc 3 of t: audio file not found: .*missing\.wav$"):
        clip_key(str(tmp_path / "missing.wav"), name="doc 3 of t")


def test_requests_record_the_content_digest_of_file_clips(tmp_path):
    import soundfile as sf
    from lm_eval.api.instance import Instance

    from lm_eval_audio.audio import file_digest, record_content_digests

    wav = tmp_path / "a.wav"
    sf.write(wav, np.ones(800, np.float32) * 0.25, 16000, subtype="FLOAT")
    array = {"array": np.zeros(10, np.float32), "sampling_rate": 16000}
    reqs = [Instance("generate_until", {}, ("Q", {}, {"audio": [str(wav), array]}), 0, ("t", 0, 1)),
            Instance("generate_until", {}, ("Q", {}, {"audio": {"path": str(wav)}}), 0, ("t", 1, 1)),
            Instance("generate_until", {}, ("Q", {}), 0, ("t", 2, 1))]
    record_content_digests(reqs)
    digest = file_digest(wav)
    assert reqs[0].args[2]["audio"] == [{"path": str(wav), "sha256": digest}, array]
    assert reqs[1].args[2]["audio"] == {"path": str(wav), "sha256": digest}
    assert reqs[2].args == ("Q", {})


def test_unsigned_8_bit_pcm_is_centred_as_libsndfile_reads_it(tmp_path):
    # 8-bit WAV samples are unsigned, centred on 128: a sine must decode around 0, as the same
    # samples in an 8-bit WAV file read through libsndfile do.
    t = np.arange(1600) / 16000
    u8 = np.round(128 + 100 * np.sin(2 * np.pi * 440 * t)).astype(np.uint8)
    got = decode_audio({"array": u8, "sampling_rate": 16000})
    assert abs(float(got.mean())) < 1e-3
    wav = tmp_path / "u8.wav"
    with sf.SoundFile(wav, "w", 16000, 1, subtype="PCM_U8") as f:
        f.write(((u8.astype(np.int16) - 128) * 256).astype(np.int16))  # soundfile writes int16 into 8 bits
    assert sf.info(wav).subtype == "PCM_U8"
    np.testing.assert_array_equal(got, decode_audio(str(wav)))
    signed = (u8.astype(np.int16) - 128).astype(np.int8)  # the same samples as signed 8-bit PCM
    np.testing.assert_array_equal(got, decode_audio({"array": signed, "sampling_rate": 16000}))


def test_long_clip_policy():
    clip = np.zeros(16000 * 31, np.float32)
    cut, truncated = limit_length(clip, max_seconds=30, policy="truncate", name="doc 1")
    assert truncated and len(cut) == 16000 * 30
    with pytest.raises(AudioError, match=r"^doc 1: clip is 31\.0 s, over the 30 s limit \(set max_audio_seconds"):
        limit_length(clip, max_seconds=30, policy="error", name="doc 1")
