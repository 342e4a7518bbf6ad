"""Text -> cached clip path: the one entry point tasks and the `synth` command use."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import ClipCache, ClipSpec
from .clips import ClipFolder, ClipMissingError
from .config import ENV_SYNTH, TTSConfig

logger = logging.getLogger(__name__)


class SynthesisError(RuntimeError):
    """The backend could not produce a valid clip for one text."""


@dataclass
class SynthStats:
    """What a synthesizer did since it was created."""

    made: int = 0
    reused: int = 0
    failed: int = 0


def _flac_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _check_audio_bytes(data: bytes, text: str) -> None:
    # A backend that answers 200 with junk must fail now, naming the text, not poison the cache.
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except Exception as e:  # soundfile raises several types for unreadable data
        raise SynthesisError(f"backend returned unreadable audio ({len(data)} bytes) for text {text[:60]!r}: {e}") from e
    if info.frames <= 0:
        raise SynthesisError(f"backend returned empty audio for text {text[:60]!r}")


class Synthesizer:
    """Turns texts into cached clips with one configuration.

    `clip(text)` returns the cached clip's path, synthesising it first when it is missing
    (or raising ClipMissingError when `config.synthesize` is False).
    """

    def __init__(self, config: TTSConfig | None = None) -> None:
        self.config = config or TTSConfig.from_env()
        self.cache = ClipCache(self.config.cache_dir)
        self.stats = SynthStats()
        self._backend = None
        self._options: tuple | None = None
        self._folder = ClipFolder(self.config.clips_dir) if self.config.backend == "clips" else None

    def _engine_options(self) -> tuple:
        if self._options is None:
            if self.config.backend == "espeak":
                from . import espeak

                self._options = (("engine", "espeak-ng " + espeak.engine_version()), ("rate", self.config.rate))
            elif self.config.audio_format not in (None, "flac"):
                # Part of the clip's identity; FLAC, the first format, keeps its original keys.
                self._options = (("format", self.config.audio_format),)
            else:
                self._options = ()
        return self._options

    def describe(self) -> dict:
        """The configuration and engine that make this synthesizer's clips (for the results);
        for pre-made clips, their folder and its content hash."""
        if self._folder is not None:
            return {**self.config.describe(), **self._folder.describe()}
        return {**self.config.describe(), **dict(self._engine_options())}

    def spec(self, text: str) -> ClipSpec:
        """The cache identity of `text` spoken with this configuration."""
        c = self.config
        return ClipSpec(c.backend, c.model, c.voice, c.instructions, text, self._engine_options())

    def _speak(self, text: str) -> bytes:
        c = self.config
        if c.backend == "espeak":
            from . import espeak

            samples, sr = espeak.synthesize(text, voice=c.voice, rate=c.rate)
            return _flac_bytes(samples, sr)
        if self._backend is None:
            from .openai_tts import OpenAISpeech

            self._backend = OpenAISpeech(model=c.model, voice=c.voice, instructions=c.instructions,
                                         audio_format=c.audio_format, max_retries=c.max_retries, timeout=c.timeout)
        data = self._backend.synthesize(text)
        _check_audio_bytes(data, text)
        return data

    def clip(self, text: str, *, name: str = "text", hint: str | None = None, stems: Sequence[str] = ()) -> Path:
        """Path of the clip speaking `text`.

        `name` identifies the item in errors; `hint` is the command that would synthesise it
        (named in the error when the clip is missing and synthesis is off); `stems` are the
        file names (without extension) the item's clip may have in a clips folder.
        """
        if self._folder is not None:
            path = self._folder.find(stems, name)
            self.stats.reused += 1
            return path
        spec = self.spec(text)
        hit = self.cache.get(spec)
        if hit is not None:
            self.stats.reused += 1
            return hit
        if not self.config.synthesize:
            hint = hint or "lm-eval-audio synth --task <task>"
            raise ClipMissingError(
                f"{name}: no {self.config.backend} clip (voice {self.config.voice}) in the cache "
                f"{self.config.cache_dir} and synthesis is off ({ENV_SYNTH}=0). Run "
                f"`{hint} --backend {self.config.backend}` first, or set {ENV_SYNTH}=1."
            )
        try:
            data = self._speak(text)
        except Exception:
            self.stats.failed += 1
            raise
        path = self.cache.put(spec, data)
        self.stats.made += 1
        return path


_override: list[Synthesizer] = []
_defaults: dict[str, Synthesizer] = {}
_run_config: list[TTSConfig] = []  # set by spoken tasks' loaders from the run's --metadata


def configure_run(metadata: dict) -> Synthesizer:
    """Make the TTS settings of one lm-eval run (environment + `--metadata` `tts_*` keys) the
    ones that spoken tasks' `doc_to_audio` use, and return that synthesizer.

    lm-eval hands `doc_to_audio` only the document, but hands every task loader the run's
    metadata, which is the same for all tasks of a run; spoken loaders call this as they load,
    so a later run in the same process never keeps an earlier run's voice.
    """
    config = TTSConfig.from_run_metadata(metadata)
    _run_config[:] = [config]
    return get_synthesizer()


def get_synthesizer() -> Synthesizer:
    """The synthesizer in effect: the innermost `use_synthesizer`, else the run's (see
    `configure_run`), else one from the environment."""
    if _override:
        return _override[-1]
    config = _run_config[0] if _run_config else TTSConfig.from_env()
    key = repr(config)
    if key not in _defaults:
        _defaults[key] = Synthesizer(config)
    return _defaults[key]


@contextlib.contextmanager
def use_synthesizer(synth: Synthesizer) -> Iterator[Synthesizer]:
    """Make `synth` the one that tasks' `doc_to_audio` use inside the block."""
    _override.append(synth)
    try:
        yield synth
    finally:
        _override.remove(synth)
