"""Speech synthesis for spoken tasks: backends (espeak offline, openai), a content-addressed
clip cache, and the `lm-eval-audio synth` command."""

from .cache import ClipCache, ClipSpec
from .config import TTSConfig, default_cache_dir
from .synthesizer import (
    ClipMissingError,
    SynthesisError,
    Synthesizer,
    SynthStats,
    configure_run,
    get_synthesizer,
    use_synthesizer,
)

__all__ = [
    "ClipCache",
    "ClipMissingError",
    "ClipSpec",
    "SynthesisError",
    "SynthStats",
    "Synthesizer",
    "TTSConfig",
    "configure_run",
    "default_cache_dir",
    "get_synthesizer",
    "use_synthesizer",
]
