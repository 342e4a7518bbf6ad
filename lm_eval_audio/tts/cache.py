"""Content-addressed store of synthesised clips.

A clip's address is the sha256 of everything that decides its sound (backend, model, voice,
instructions, engine options, text). Writes go to a temporary file in the same folder and are
published with `os.replace`, which is atomic on POSIX and Windows: a process killed mid-write
leaves at most a stray `*.tmp`, never a truncated clip under a valid name. So "the file exists"
means "the clip is complete", which is what makes reruns free and interrupted runs resumable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from lm_eval_audio.files import atomic_write_bytes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides how one clip sounds."""

    backend: str
    model: str | None
    voice: str | None
    instructions: str | None
    text: str
    options: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> str:
        """The clip's content address (hex sha256 of a canonical JSON of the spec)."""
        payload = json.dumps(
            {
                "backend": self.backend,
                "model": self.model,
                "voice": self.voice,
                "instructions": self.instructions,
                "options": dict(self.options),
                "text": self.text,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def suffix(self) -> str:
        """The clip file's extension: its encoding (FLAC unless the spec names another format)."""
        return "." + str(dict(self.options).get("format", "flac"))


class ClipCache:
    """Clips stored as `<root>/<key[:2]>/<key>.flac` (or `.mp3`, as the spec's format says), with a
    `<key>.json` note of their spec."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    def path(self, spec: ClipSpec) -> Path:
        """Where the clip of `spec` lives (whether or not it exists yet)."""
        key = spec.key
        return self.root / key[:2] / (key + spec.suffix)

    def get(self, spec: ClipSpec) -> Path | None:
        """The cached clip's path, or None when it has not been synthesised."""
        p = self.path(spec)
        return p if p.is_file() else None

    def put(self, spec: ClipSpec, audio_bytes: bytes) -> Path:
        """Store a finished clip atomically and return its path."""
        p = self.path(spec)
        # The note first: a clip never exists without the record of what it says.
        note = {
            "backend": spec.backend,
            "model": spec.model,
            "voice": spec.voice,
            "instructions": spec.instructions,
            "options": dict(spec.options),
            "text": spec.text,
        }
        atomic_write_bytes(p.with_suffix(".json"), json.dumps(note, ensure_ascii=False, indent=1).encode("utf-8"))
        atomic_write_bytes(p, audio_bytes)
        return p
