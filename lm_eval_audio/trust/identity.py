"""A model's identity: every argument that can change a score, as one digest.

lm-eval's request cache (`--use_cache PATH`) keys on request arguments only, so two runs that
differ in `mode`, `peft`, `dtype`, `audio_control` or the checkpoint and share a cache path
would return each other's answers. Our models expose `cache_identity()` and, when lm-eval's
`CachingLM` hands them its cache hook, move the cache onto a table of their own in the cache
file (`scope_request_cache`), so two identities never share an answer.

What counts: every model arg the user passed or that has a default, except those listed in
`NON_SCORING` (where the model runs and how requests are batched; batch effects are what
`verify_batch` measures), plus the resolved dtype and a fingerprint of the checkpoint and
adapter files (name, size and modification time of every file in a local folder; the commit
hash for a hub checkpoint), so a retrained adapter at the same path is a different model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# model args that decide where and how fast a model runs, not what it answers
NON_SCORING = frozenset({
    "batch_size", "max_batch_size", "device", "device_map", "parallelize", "max_memory_per_gpu",
    "max_cpu_memory", "offload_folder", "verify_batch", "cpu_threads", "num_workers",
})


def checkpoint_fingerprint(source: str | None, commit_hash: str | None = None) -> str | None:
    """Fingerprint of a checkpoint or adapter: its local files' names, sizes and mtimes, or
    `hub:<id>@<commit>` for one resolved from the hub cache (commit unknown: `@?`)."""
    if source is None:
        return None
    path = Path(str(source)).expanduser()
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()  # follows the hub cache's symlinks to the blobs
            h.update(f"{f.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return f"dir:{path.resolve()}:{h.hexdigest()[:16]}"
    if path.is_file():
        st = path.stat()
        return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"hub:{source}@{commit_hash or '?'}"


def scoring_args(args: dict[str, Any]) -> dict[str, Any]:
    """`args` without the ones that cannot change a score (`NON_SCORING`), values as strings."""
    return {k: str(v) for k, v in sorted(args.items()) if k not in NON_SCORING}


def identity_digest(model: str, fields: dict[str, Any]) -> str:
    """sha256 (hex, 32 characters) of the model name and its identity fields."""
    blob = json.dumps({"model": model, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


CACHE_TABLE_PREFIX = "lm_eval_audio_"


def scope_request_cache(cache_hook: Any, identity: str) -> None:
    """Point lm-eval's request cache at a table of this identity's own in the same cache file.

    `CachingLM` gives the model a `CacheHook` whose `dbdict` is the very `SqliteDict` that
    `CachingLM` reads cached answers from; reopening that object on another table scopes both
    the lookups and the writes. Without `--use_cache` the hook has no `dbdict` and nothing
    changes. A cache of another kind cannot be scoped, and sharing it would hand one model
    another's answers, so that raises.
    """
    db = getattr(cache_hook, "dbdict", None)
    if db is None:
        return
    from sqlitedict import SqliteDict

    table = f"{CACHE_TABLE_PREFIX}{identity}"
    if not isinstance(db, SqliteDict) or not getattr(db, "filename", None):
        raise RuntimeError(
            f"lm-eval's request cache is a {type(db).__name__}, not the SqliteDict file lm-eval-audio knows how "
            "to scope by model identity: its cached answers could belong to another model. Run without --use_cache")
    if db.tablename == table:
        return
    autocommit = db.autocommit
    db.close()
    # The same object, reopened: CachingLM holds a reference to it, not to a table name.
    SqliteDict.__init__(db, db.filename, tablename=table, autocommit=autocommit)
