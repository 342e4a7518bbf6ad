"""The one audio decoder of the project: read, down-mix, resample, validate.

Audio reaches models in several shapes: lm-eval's `{"array", "sampling_rate"}` dicts, file
paths, Hugging Face `datasets` audio dicts loaded with `decode=False` (`{"bytes", "path"}`;
we never let `datasets` decode, since its torchcodec/FFmpeg route may be missing), and our own
lightweight references (`audio_ref`). Everything goes through `decode_audio`, which returns
16 kHz mono float32 or raises `AudioError` naming the item.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
MAX_SECONDS = 30.0  # Whisper-style encoders (Qwen2-Audio's too) see at most 30 s.

AudioItem = Any  # str | os.PathLike | dict; see module docstring


class AudioError(ValueError):
    """Bad audio input; the message names the item and what is wrong with it."""


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (streamed, so large files are not held in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def audio_ref(path: str | os.PathLike) -> dict:
    """A JSON-serialisable reference to an audio file, decoded only when a model needs it.

    Tasks return these from `doc_to_audio` instead of decoded arrays: lm-eval builds every
    request before running any, so arrays would hold a whole dataset's audio in memory. The
    content digest makes lm-eval's request cache (`--use_cache`) key on the audio itself.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise AudioError(f"audio file not found: {p}")
    return {"path": str(p), "sha256": file_digest(p)}


# Key of a clip reference holding the text the clip speaks, where that text also stands in the
# request's context (a spoken twin's prompt): `mode=audio` removes exactly that text, nothing else.
TRANSCRIPT = "transcript"


def clip_transcript(item: AudioItem) -> str | None:
    """The text a clip says it speaks (its `transcript` entry), or None."""
    text = item.get(TRANSCRIPT) if isinstance(item, dict) else None
    return text if isinstance(text, str) and text.strip() else None


def as_clip_list(audio: Any) -> list:
    """Normalise a request's audio argument (one clip or a list of clips) to a list."""
    if audio is None:
        return []
    if isinstance(audio, (list, tuple)):
        return list(audio)
    return [audio]


# resolved path -> (mtime_ns, size, sha256): a file is hashed once per version, however many
# requests, batches or runs in this process name it.
_DIGESTS: dict[str, tuple[int, int, str]] = {}


def content_digest(path: str | os.PathLike, *, name: str = "audio") -> str:
    """sha256 of a file's bytes, read once per version of the file: memoised by resolved path,
    modification time (ns) and size, so a file rewritten in place is hashed again and a file
    named by many requests is read once. Raises AudioError naming `name` when it is missing."""
    p = str(Path(path).expanduser().resolve())
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise AudioError(f"{name}: audio file not found: {p}") from None
    memo = _DIGESTS.get(p)
    if memo is not None and memo[:2] == (st.st_mtime_ns, st.st_size):
        return memo[2]
    digest = file_digest(p)
    _DIGESTS[p] = (st.st_mtime_ns, st.st_size, digest)
    return digest


def clip_key(item: AudioItem, *, name: str = "audio") -> str:
    """A content key for one clip, used to decode and encode each distinct clip once.

    Every form keys on what the clip holds, never on where it lies: a file path (plain or in a
    `{"path"}` dict) keys on the file's sha256 (`content_digest`), so the same file under two
    paths is one clip and a file rewritten in place is a new one.
    """
    if isinstance(item, (str, os.PathLike)):
        return "sha256:" + content_digest(item, name=name)
    if isinstance(item, dict):
        if item.get("sha256"):
            return "sha256:" + item["sha256"]
        if item.get("array") is not None:
            arr = np.ascontiguousarray(np.asarray(item["array"]))
            h = hashlib.sha1(arr.tobytes())
            h.update(f"{arr.dtype}{arr.shape}{item.get('sampling_rate')}".encode())
            return "array:" + h.hexdigest()
        if item.get("bytes") is not None:
            return "bytes:" + hashlib.sha1(item["bytes"]).hexdigest()
        if item.get("path"):
            return "sha256:" + content_digest(item["path"], name=name)
    raise AudioError(f"{name}: unsupported audio item of type {type(item).__name__}: {_describe(item)}")


def with_content_digest(item: AudioItem, *, name: str = "audio") -> AudioItem:
    """The clip with its file's sha256 recorded (`{"path", "sha256", ...}`) when it is a file
    named by path alone; any other clip unchanged.

    lm-eval's request cache (`--use_cache`) keys on a request's arguments as JSON: a bare path
    would key on the path, and a file rewritten in place would get the old file's answers.
    """
    if isinstance(item, (str, os.PathLike)):
        return {"path": str(item), "sha256": content_digest(item, name=name)}
    if isinstance(item, dict) and item.get("path") and not item.get("sha256") \
            and item.get("array") is None and item.get("bytes") is None:
        return {**item, "sha256": content_digest(item["path"], name=name)}
    return item


def record_content_digests(requests: list) -> None:
    """Give every file clip of lm-eval requests its sha256 in the request's arguments (in place,
    `with_content_digest`), so lm-eval's request cache keys on the audio, not on its path.

    Models call it from `see_requests`, which the start-up hook runs before the cache looks the
    requests up; the rewritten arguments are also what results are cached under.
    """
    for req in requests:
        extra = req.args[2] if len(req.args) > 2 and isinstance(req.args[2], dict) else None
        if not extra or extra.get("audio") is None:
            continue
        clips = as_clip_list(extra["audio"])
        keyed = [with_content_digest(c, name=f"doc {req.doc_id} of {req.task_name or 'request'}, clip {j}")
                 for j, c in enumerate(clips)]
        if all(k is c for k, c in zip(keyed, clips)):
            continue
        audio = keyed if isinstance(extra["audio"], (list, tuple)) else keyed[0]
        req.arguments = (*req.args[:2], {**extra, "audio": audio}, *req.args[3:])


def _describe(item: Any) -> str:
    if isinstance(item, dict):
        return "{" + ", ".join(f"{k}: {type(v).__name__}" for k, v in item.items()) + "}"
    return repr(item)[:80]


def _read_file(source, name: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        # Fall back to librosa/audioread for formats libsndfile cannot read (e.g. mp3 on old libsndfile).
        try:
            import librosa

            if hasattr(source, "seek"):
                source.seek(0)
            y, sr = librosa.load(source, sr=None, mono=False)
            data = np.atleast_2d(y).T.astype(np.float32)
        except Exception:
            raise AudioError(f"{name}: unreadable or corrupt audio ({e})") from e
    return data, int(sr)


def to_mono(array: np.ndarray) -> np.ndarray:
    """Down-mix to mono. Accepts (samples,), (samples, channels) or (channels, samples)."""
    a = np.asarray(array)
    if a.ndim == 1:
        return a
    if a.ndim != 2:
        raise ValueError(f"audio array must be 1-D or 2-D, got shape {a.shape}")
    # Channels are the short axis: (2, n) from torch/librosa, (n, 2) from soundfile.
    channel_axis = 0 if a.shape[0] < a.shape[1] else 1
    return a.mean(axis=channel_axis)


def resample(array: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr (high quality, fast); a no-op when the rates already match."""
    if orig_sr == target_sr:
        return array
    import soxr

    return soxr.resample(array, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def decode_audio(item: AudioItem, *, name: str = "audio", sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode one clip to mono float32 at `sampling_rate`, validating it.

    `name` identifies the item in errors (e.g. "doc 12 of spoken_mmlu_seed, clip 0").
    Raises AudioError for missing files, unreadable/corrupt data, empty audio, NaN or inf
    samples, and a missing or invalid sampling rate.
    """
    if isinstance(item, (str, os.PathLike)):
        item = {"path": str(item)}
    if not isinstance(item, dict):
        raise AudioError(f"{name}: unsupported audio item {_describe(item)}")

    if item.get("array") is not None:
        sr = item.get("sampling_rate")
        if sr is None or not np.isscalar(sr) or int(sr) <= 0:
            raise AudioError(f"{name}: audio array has no valid sampling_rate (got {sr!r})")
        data, sr = np.asarray(item["array"]), int(sr)
        if data.dtype.kind in "iu":  # integer PCM -> [-1, 1)
            info = np.iinfo(data.dtype)
            # Unsigned PCM (8-bit WAV's form) is centred on half its range: remove that offset.
            centre = (info.max + 1) // 2 if data.dtype.kind == "u" else 0
            data = (data.astype(np.float64) - centre) / float(info.max - centre + 1)
    elif item.get("bytes") is not None:
        data, sr = _read_file(io.BytesIO(item["bytes"]), name)
    elif item.get("path"):
        path = Path(item["path"]).expanduser()
        if not path.is_file():
            raise AudioError(f"{name}: audio file not found: {path}")
        data, sr = _read_file(str(path), name)
    else:
        raise AudioError(f"{name}: audio item has neither array, bytes nor path: {_describe(item)}")

    data = np.asarray(data, dtype=np.float32)
    # Checked before the down-mix: the mean over a (0, channels) array is a NaN, not an empty clip.
    if data.size == 0:
        raise AudioError(f"{name}: audio clip is empty (0 samples)")
    try:
        data = to_mono(data)
    except ValueError as e:
        raise AudioError(f"{name}: {e}") from e
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(resample(data, sr, sampling_rate), dtype=np.float32)


def duration_seconds(item: AudioItem) -> float | None:
    """Cheap duration estimate (file header or array length) without decoding; None if unknown."""
    try:
        if isinstance(item, dict) and item.get("array") is not None:
            a = np.asarray(item["array"])
            return max(a.shape) / float(item["sampling_rate"])
        path = item if isinstance(item, (str, os.PathLike)) else (item or {}).get("path")
        if path:
            import soundfile as sf

            return float(sf.info(str(path)).duration)
    except Exception:  # only a sorting hint: an unknown duration is fine here
        return None
    return None


def limit_length(
    array: np.ndarray,
    *,
    max_seconds: float,
    policy: str,
    name: str,
    sampling_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, bool]:
    """Apply the long-clip policy: "truncate" returns the first `max_seconds`, "error" raises.

    Returns (array, was_truncated). Callers warn about truncation (once, with a count).
    """
    limit = int(round(max_seconds * sampling_rate))
    if array.shape[-1] <= limit:
        return array, False
    if policy == "error":
        raise AudioError(
            f"{name}: clip is {array.shape[-1] / sampling_rate:.1f} s, over the {max_seconds:g} s limit "
            f"(set max_audio_seconds or long_audio=truncate to cut it)"
        )
    if policy != "truncate":
        raise ValueError(f"unknown long-audio policy {policy!r}; use 'truncate' or 'error'")
    return array[:limit], True


def wav_bytes(array: np.ndarray, sampling_rate: int = SAMPLE_RATE, subtype: str = "FLOAT") -> bytes:
    """A mono WAV file of `array`. FLOAT keeps the decoder's samples bit for bit."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(array, dtype=np.float32), sampling_rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def wav_base64(array: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> str:
    """`wav_bytes` (float samples) as base64 text, the form of an inline audio file."""
    import base64

    return base64.b64encode(wav_bytes(array, sampling_rate)).decode("ascii")
