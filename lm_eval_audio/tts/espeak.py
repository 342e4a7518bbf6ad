"""Offline speech through espeak-ng, in process.

The `espeakng-loader` wheel ships `libespeak-ng` and its voice data, so no system package is
needed. There is no maintained Python binding to the C API on PyPI that uses that wheel, hence
these few ctypes declarations. espeak-ng keeps global state (one voice, one callback per
process) and is not thread-safe: every call holds one process-wide lock.
"""

from __future__ import annotations

import ctypes
import logging
import threading

import numpy as np

logger = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: samples delivered to the callback
_POS_CHARACTER = 1  # espeak_POSITION_TYPE
_CHARS_UTF8 = 1  # espeakCHARS_UTF8
_ESPEAK_RATE = 1  # espeak_PARAMETER: words per minute
_EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()
_state: dict = {}


class EspeakError(RuntimeError):
    """espeak-ng failed; the message names the voice or text concerned."""


def _library():
    """Load and initialise libespeak-ng once per process (under the lock)."""
    if "lib" in _state:
        return _state["lib"]
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise EspeakError("the espeak backend needs the `espeakng-loader` package") from e
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if sample_rate <= 0:
        raise EspeakError(f"espeak_Initialize failed (returned {sample_rate}) with data at "
                          f"{espeakng_loader.get_data_path()}")

    chunks: list[np.ndarray] = []

    def on_samples(wav, n, _events):
        if n > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep synthesising

    callback = _CALLBACK(on_samples)  # kept referenced in _state: ctypes must not collect it
    lib.espeak_SetSynthCallback(callback)
    _state.update(lib=lib, sample_rate=sample_rate, chunks=chunks, callback=callback, voice=None, rate=None)
    return lib


def engine_version() -> str:
    """espeak-ng's version string (part of the cache key: a new engine sounds different)."""
    with _lock:
        lib = _library()
        return lib.espeak_Info(None).decode()


def synthesize(text: str, *, voice: str = "en-us", rate: int = 175) -> tuple[np.ndarray, int]:
    """Speak `text`; returns (int16 samples, sample rate: 22050 for the bundled voices)."""
    if not text or not text.strip():
        raise EspeakError("cannot synthesise empty text")
    with _lock:
        lib = _library()
        if _state["voice"] != voice:
            err = lib.espeak_SetVoiceByName(voice.encode())
            if err != _EE_OK:
                raise EspeakError(f"espeak-ng has no voice {voice!r} (error {err}); try e.g. 'en-us', 'en', 'en-GB-x-rp', 'en+f3' (a variant)")
            _state["voice"] = voice
            _state["rate"] = None  # selecting a voice resets the rate
        if _state["rate"] != rate:
            err = lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
            if err != _EE_OK:
                raise EspeakError(f"espeak-ng refused rate {rate} (error {err})")
            _state["rate"] = rate
        chunks = _state["chunks"]
        chunks.clear()
        data = text.encode("utf-8")
        err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err == _EE_OK:
            err = lib.espeak_Synchronize()
        if err != _EE_OK:
            raise EspeakError(f"espeak-ng failed (error {err}) on text {text[:60]!r}")
        if not chunks:
            raise EspeakError(f"espeak-ng produced no audio for text {text[:60]!r}")
        samples = np.concatenate(chunks)
        chunks.clear()
        return samples, _state["sample_rate"]
