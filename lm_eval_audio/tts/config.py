"""Configuration of speech synthesis: which engine speaks, with which voice, cached where.

Every field that changes the sound of a clip is part of the clip's cache key (`cache.clip_key`),
so two configurations never share a clip by accident.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

# Environment variables (documented in the README): the task side of the plugin reads these,
# since lm-eval gives `doc_to_audio` nothing but the document.
ENV_BACKEND = "LM_EVAL_AUDIO_TTS_BACKEND"
ENV_VOICE = "LM_EVAL_AUDIO_TTS_VOICE"
ENV_CACHE = "LM_EVAL_AUDIO_TTS_CACHE"
ENV_SYNTH = "LM_EVAL_AUDIO_SYNTH"
ENV_CLIPS_DIR = "LM_EVAL_AUDIO_TTS_CLIPS_DIR"
ENV_FORMAT = "LM_EVAL_AUDIO_TTS_FORMAT"

# espeak and openai speak the text; clips reads pre-made files from a folder (`tts/clips.py`).
BACKENDS = ("espeak", "openai", "clips")
# What the openai backend asks the endpoint for. The seed's request set no response_format, so
# it got the API's default, MP3; FLAC (lossless) is ours.
OPENAI_FORMATS = ("flac", "mp3")

# The seed study's OpenAI settings.
OPENAI_MODEL = "gpt-4o-mini-tts"
OPENAI_VOICE = "alloy"
OPENAI_INSTRUCTIONS = "Speak like reading a question with 4 alternatives in an exam."
ESPEAK_VOICE = "en-us"
ESPEAK_RATE = 175  # words per minute, espeak-ng's own default

_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def default_cache_dir() -> Path:
    """`$LM_EVAL_AUDIO_TTS_CACHE`, else `tts/` under the package's cache root (`files.cache_root`)."""
    from lm_eval_audio.files import cache_root

    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    return cache_root() / "tts"


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected one of {sorted(_TRUE | _FALSE)}")


@dataclass
class TTSConfig:
    """How clips are synthesised and where they are cached.

    `voice`, `model` and `instructions` left as None take the backend's defaults (espeak:
    voice en-us; openai: the seed's gpt-4o-mini-tts, alloy, exam-reading instructions).
    `audio_format`: what the openai backend requests (flac, or mp3 as the seed effectively got).
    `clips_dir`: the folder the clips backend reads. `synthesize=False` makes a missing clip an
    error instead of a synthesis job.
    """

    backend: str = "espeak"
    voice: str | None = None
    model: str | None = None
    instructions: str | None = None
    rate: int | None = None  # espeak words per minute
    audio_format: str | None = None  # openai: flac (default) or mp3
    clips_dir: Path | None = None  # clips: the folder of pre-made clips
    cache_dir: Path = field(default_factory=default_cache_dir)
    synthesize: bool = True
    max_retries: int = 6  # openai: retries on 429 / 5xx / connection errors, with backoff
    timeout: float = 60.0  # openai: seconds per request

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown TTS backend {self.backend!r}; choose from {BACKENDS}")
        self.cache_dir = Path(self.cache_dir).expanduser()
        if self.backend != "openai" and self.audio_format is not None:
            raise ValueError(f"the {self.backend} backend takes no audio format (only openai's request has one)")
        if self.backend == "clips":
            if not self.clips_dir:
                raise ValueError(f"the clips backend needs a folder: clips_dir, --metadata tts_clips_dir or {ENV_CLIPS_DIR}")
            self.clips_dir = Path(self.clips_dir).expanduser()
            given = [k for k in ("voice", "model", "instructions", "rate") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"the clips backend reads files and takes no {', '.join(given)}")
            return
        if self.clips_dir is not None:
            raise ValueError(f"clips_dir is for the clips backend, not {self.backend}")
        if self.backend == "espeak":
            self.voice = self.voice or ESPEAK_VOICE
            self.rate = self.rate or ESPEAK_RATE
            if self.model or self.instructions:
                raise ValueError("the espeak backend takes no model or instructions")
        else:
            self.audio_format = self.audio_format or "flac"
            if self.audio_format not in OPENAI_FORMATS:
                raise ValueError(f"unknown openai audio format {self.audio_format!r}; choose from {OPENAI_FORMATS}")
            self.voice = self.voice or OPENAI_VOICE
            self.model = self.model or OPENAI_MODEL
            self.instructions = OPENAI_INSTRUCTIONS if self.instructions is None else self.instructions
            if self.rate is not None:
                raise ValueError("the openai backend takes no rate")

    @classmethod
    def from_env(cls, **overrides) -> "TTSConfig":
        """The configuration the environment asks for; explicit keyword overrides win."""
        values: dict = {}
        if os.environ.get(ENV_BACKEND):
            values["backend"] = os.environ[ENV_BACKEND].strip()
        if os.environ.get(ENV_VOICE):
            values["voice"] = os.environ[ENV_VOICE].strip()
        values["synthesize"] = _env_flag(ENV_SYNTH, True)
        values.update({k: v for k, v in overrides.items() if v is not None})
        # Backend-specific settings from the environment apply to that backend only.
        backend = values.get("backend", cls.backend)
        if backend == "clips" and os.environ.get(ENV_CLIPS_DIR):
            values.setdefault("clips_dir", os.environ[ENV_CLIPS_DIR].strip())
        if backend == "openai" and os.environ.get(ENV_FORMAT):
            values.setdefault("audio_format", os.environ[ENV_FORMAT].strip())
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"unknown TTSConfig fields: {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def from_run_metadata(cls, metadata: dict) -> "TTSConfig":
        """The configuration of one lm-eval run: the environment's, with the run's `--metadata`
        keys `tts_backend`, `tts_voice`, `tts_model`, `tts_instructions`, `tts_rate`,
        `tts_audio_format`, `tts_clips_dir` winning."""
        keys = {f"tts_{name}": name for name in ("backend", "voice", "model", "instructions", "rate",
                                                 "audio_format", "clips_dir")}
        unknown = sorted(k for k in metadata if k.startswith("tts_") and k not in keys)
        if unknown:
            raise ValueError(f"unknown TTS setting(s) {unknown} in --metadata; valid: {sorted(keys)}")
        overrides = {name: metadata[key] for key, name in keys.items() if metadata.get(key) is not None}
        if "rate" in overrides:
            overrides["rate"] = int(overrides["rate"])
        env = cls.from_env()
        if overrides.get("backend", env.backend) != env.backend:
            # The environment's voice and model belong to the environment's backend.
            kept = {k: getattr(env, k) for k in ("cache_dir", "synthesize", "max_retries", "timeout")}
            return cls(**kept, **overrides)
        return cls.from_env(**overrides)

    def describe(self) -> dict:
        """What decides how a clip sounds (recorded in the results of every spoken task)."""
        facts = {"backend": self.backend, "model": self.model, "voice": self.voice,
                 "instructions": self.instructions, "rate": self.rate, "audio_format": self.audio_format}
        return {k: v for k, v in facts.items() if v is not None}  # what the backend does not take

    def with_(self, **changes) -> "TTSConfig":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)
