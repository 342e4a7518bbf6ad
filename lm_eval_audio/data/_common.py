"""What the dataset loaders of this package share: the cache folder, atomic folder builds, and
turning a `datasets` audio column into lightweight file references.

Docs that lm-eval holds carry `{"path", "sha256"}` references (see `lm_eval_audio.audio.audio_ref`),
never audio bytes or arrays: lm-eval builds every request before it runs any and copies each doc
into its logged samples, so bytes in docs would sit in memory all run and bloat the samples file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lm_eval_audio.files import atomic_write_bytes, cache_root

logger = logging.getLogger(__name__)

def file_inside(folder: Path, name: str, where: str) -> Path:
    """`folder / name`, refusing a name from a dataset's metadata that points outside `folder`
    (an absolute path, `..`, or a symlink out): local metadata must not make us read, and hand a
    model, any file on the machine. `where` names the metadata entry in the error."""
    base = Path(folder).resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"{where}: file name {name!r} resolves to {path}, outside its folder {base}")
    return path


PROTOCOL_ATTR = "_lm_eval_audio_protocol"


def record_protocol(dataset, **facts: Any):
    """Attach what made a task's data (source, TTS settings, ...) to its DatasetDict, and return it.

    lm-eval gives a task loader the run's metadata but keeps nothing it returns besides the
    data; the start-up hook (`_hook.py`) moves these facts into the task's `metadata.protocol`,
    which lm-eval writes into the results JSON, and adds a hash of the items scored.
    """
    setattr(dataset, PROTOCOL_ATTR, dict(facts))
    return dataset


def recorded_protocol(dataset) -> dict:
    """The facts `record_protocol` attached to a dataset ({} when none)."""
    return dict(getattr(dataset, PROTOCOL_ATTR, None) or {})


def items_sha256(docs: Iterable[dict]) -> str:
    """A content hash of documents, in order (what a results file calls the items scored)."""
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json.dumps(doc, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def build_dir_once(target: Path, build: Callable[[Path], None], *, complete_marker: str) -> Path:
    """Return `target`, building it first with `build(tmp_dir)` unless it is already complete.

    The build writes into a private temporary sibling that is renamed into place only when
    `build` returns, so a killed process never leaves a half-written folder that a later run
    would take as valid, and two processes racing to build it both end up with one copy.
    """
    target = Path(target)
    if (target / complete_marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        if not (tmp / complete_marker).is_file():
            raise RuntimeError(f"building {target} did not write its marker {complete_marker}")
        if target.exists() and not (target / complete_marker).is_file():
            # Left by a build that predates atomic writes or was edited by hand: rebuild it.
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / complete_marker).is_file():
                raise
            logger.debug("another process built %s first; using its copy", target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def materialise_audio(item: Any, *, name: str, store: Path | None = None) -> dict:
    """Turn one `datasets` audio value loaded with `decode=False` into a `{"path", "sha256"}` ref.

    Values that point at a readable file are referenced where they lie; values that carry
    bytes (hub parquet/arrow) are written once into a content-addressed store under the cache
    folder (`audio/<sha256><suffix>`), reused on every later run.
    """
    from lm_eval_audio.audio import AudioError, audio_ref

    if isinstance(item, (str, os.PathLike)):
        item = {"path": str(item), "bytes": None}
    if not isinstance(item, dict):
        raise AudioError(f"{name}: expected an audio dict with 'bytes' or 'path', got {type(item).__name__}")
    data, path = item.get("bytes"), item.get("path")
    if data is None:
        if path and Path(path).is_file():
            return audio_ref(path)
        raise AudioError(f"{name}: audio has no bytes and its path is not a readable file: {path!r}")
    if not data:
        raise AudioError(f"{name}: audio bytes are empty")
    digest = hashlib.sha256(data).hexdigest()
    suffix = Path(path).suffix.lower() if path and Path(path).suffix else ".audio"
    store = Path(store) if store is not None else cache_root() / "audio"
    target = store / digest[:2] / f"{digest}{suffix}"
    if not target.is_file():
        atomic_write_bytes(target, data)
    return {"path": str(target), "sha256": digest}


def materialise_column(rows: Iterable[dict], column: str, *, what: str, total: int | None = None) -> list[dict]:
    """Replace the audio `column` of each row with a file reference (with a progress bar)."""
    from tqdm.auto import tqdm

    out = []
    for i, row in enumerate(tqdm(rows, total=total, desc=f"audio refs for {what}", unit="clip", leave=False)):
        row = dict(row)
        row[column] = materialise_audio(row[column], name=f"{what}, row {i} ({row.get('id', '?')})")
        out.append(row)
    return out
