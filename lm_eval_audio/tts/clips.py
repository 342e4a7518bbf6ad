"""Bring your own clips: a folder of pre-made audio files stands in for synthesis.

A spoken task asks its speech backend for the clip of one item; this backend looks it up in a
folder instead of speaking the text. Files are named by item, in any format soundfile or
librosa decodes (MP3, FLAC, WAV, OGG, ...; the extension does not matter):
- `question_{i}.<ext>`: the item's position in the seed's order (`question_0` is its first item),
  as the seed study named its clips (seed MMLU tasks);
- `{item id}.<ext>` with `/` replaced by `_` (MMLU: `nutrition_49.mp3`; `asr_synth`: the
  utterance id).
The folder's content hash (every file's name and bytes) is recorded in the results' protocol,
so two runs on different clips never look alike. A missing clip is an error naming the item
and the files it looked for.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


class ClipMissingError(LookupError):
    """A clip is not there: not in the cache with synthesis off (the message names the command to
    run), or not in a clips folder (the message names the item and the files looked for)."""


def item_stem(item_id: str) -> str:
    """The file stem of an item id: `/` (not allowed in a file name) replaced by `_`."""
    return str(item_id).replace("/", "_")


class ClipFolder:
    """The audio files of one folder, found by stem."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"clips folder not found: {self.root}")
        self._by_stem: dict[str, list[Path]] | None = None
        self._digest: str | None = None

    def _index(self) -> dict[str, list[Path]]:
        if self._by_stem is None:
            index: dict[str, list[Path]] = {}
            for p in sorted(self.root.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    index.setdefault(p.stem, []).append(p)
            self._by_stem = index
        return self._by_stem

    def find(self, stems: Sequence[str], name: str) -> Path:
        """The clip of the first stem present; `name` is the item as errors show it."""
        if not stems:
            raise ClipMissingError(f"{name}: the clips backend needs the item's file name, and this task gives none")
        index = self._index()
        for stem in stems:
            found = index.get(stem)
            if found:
                if len(found) > 1:
                    raise ClipMissingError(f"{name}: several clips for one item in {self.root}: "
                                           f"{[p.name for p in found]}")
                return found[0]
        expected = " or ".join(str(self.root / f"{s}.<ext>") for s in stems)
        raise ClipMissingError(f"{name}: no clip in the clips folder; expected {expected}")

    def digest(self) -> str:
        """sha256 over every file's name and content digest (what the results record)."""
        if self._digest is None:
            from lm_eval_audio.audio import file_digest

            h = hashlib.sha256()
            for stem in sorted(self._index()):
                for p in self._index()[stem]:
                    h.update(f"{p.name}\0{file_digest(p)}\n".encode("utf-8"))
            self._digest = h.hexdigest()
        return self._digest

    def describe(self) -> dict:
        """The folder, its file count and content hash, for the results' protocol."""
        files = sum(len(v) for v in self._index().values())
        return {"clips_dir": str(self.root), "clips_files": files, "clips_sha256": self.digest()}
