"""Where this package keeps files, and how it writes them: one owner for these facts.

- `tasks_dir()`: the task YAMLs shipped with the package.
- `cache_root()`: generated and materialised audio, synthesised speech, judge answers.
- `atomic_write_bytes()`: every cache file (TTS clips, data materialisation, judge records, the
  seed item file) is written so a reader sees nothing or the whole file, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_ENV = "LM_EVAL_AUDIO_CACHE"


def cache_root() -> Path:
    """`$LM_EVAL_AUDIO_CACHE`, else `$XDG_CACHE_HOME/lm_eval_audio`, else `~/.cache/lm_eval_audio`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lm_eval_audio"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either nothing or the whole file (a temp file
    in the same folder, flushed to disk, then renamed over `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: the partial temp file must not linger.
        Path(tmp).unlink(missing_ok=True)
        raise


def tasks_dir() -> Path:
    """The folder holding this package's task YAMLs (inside the wheel, or the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "tasks", here.parent / "tasks"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"lm_eval_audio task folder not found next to {here}")
