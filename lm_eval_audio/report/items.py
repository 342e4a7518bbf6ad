"""Per-item records of a run and how two runs' items are paired: by item identity, not doc_id.

lm-eval's samples JSONL holds, per document and filter, the document (`doc`), its `doc_id`
(its position in the task), `target`, `filtered_resps` and each metric's per-item value. A
task names the document field that identifies an item in its metadata: `item_key: mmlu_id`
(MMLU questions, "anatomy/12"), `id` (LibriSpeech utterances), `clip_id` (timbre clips). Two
runs are paired on that field, so a spoken task whose documents come in another order than its
text twin still pairs question with question. Where the documents lack the field (or the task
names none, or the two tasks name different ones) there is no item identity across two tasks:
their items are not paired at all, and the comparison says why (a doc_id is a position, and
equal targets, which for MMLU letters agree one time in four by chance, prove nothing). Two runs
of one task, and a spoken twin (`lm-eval-audio speak`) and its original, hold the same
documents: without an item key they pair by doc_id (the twin's: its original's) where both
lines carry the same document content hash (`doc_hash`), which is then the identity; a document
whose hash differs or is missing is left out and counted, never paired.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lm_eval_audio.report.load import ResultsError, TaskResult

logger = logging.getLogger(__name__)

DOC_ID = "doc_id"


@dataclass(frozen=True)
class ItemRecord:
    """One document of one run under one filter."""

    doc_id: int
    doc: dict[str, Any] = field(repr=False, hash=False, compare=False)
    target: str
    doc_hash: str | None
    filtered: str  # the filtered response (the extracted letter, the transcript, ...)
    values: dict[str, Any] = field(repr=False, hash=False, compare=False)  # metric -> per-item value


@lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int) -> tuple[tuple[str, ItemRecord], ...]:
    # mtime in the cache key: a file rewritten in place is read again.
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                s = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultsError(f"{path}:{lineno}: not JSON: {e}") from e
            doc_id = s.get("doc_id")
            if not isinstance(doc_id, int):
                raise ResultsError(f"{path}:{lineno}: doc_id {doc_id!r} is not an integer")
            filtered = s.get("filtered_resps")
            while isinstance(filtered, list) and filtered:
                filtered = filtered[0]  # one generation per document: the first
            metrics = s.get("metrics") or [k for k in s if k not in _NOT_METRICS]
            out.append((str(s.get("filter", "none")), ItemRecord(
                doc_id=doc_id, doc=s.get("doc") if isinstance(s.get("doc"), dict) else {},
                target=str(s.get("target")), doc_hash=s.get("doc_hash"),
                filtered="" if filtered is None or filtered == [] else str(filtered),
                values={m: s[m] for m in metrics if m in s})))
    return tuple(out)


_NOT_METRICS = frozenset({"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter",
                          "metrics", "doc_hash", "prompt_hash", "target_hash"})


def records(path: Path, filter_key: str) -> list[ItemRecord]:
    """Every document's record under `filter_key`; raises ResultsError naming the line if a
    document appears twice."""
    seen: set[int] = set()
    out = []
    path = Path(path)
    for filt, rec in _read(path, path.stat().st_mtime_ns):
        if filt != filter_key:
            continue
        if rec.doc_id in seen:
            raise ResultsError(f"{path}: doc_id {rec.doc_id} appears twice for filter {filter_key!r}")
        seen.add(rec.doc_id)
        out.append(rec)
    return out


@dataclass
class Items:
    """One run's items of one task and filter, keyed by item identity."""

    task: str
    key: str  # the document field the items are keyed by, or "doc_id"
    by_key: dict[str, ItemRecord]
    fallback_reason: str | None = None  # why the items are keyed by doc_id, if they are

    def value(self, item: str, metric: str) -> Any:
        """The per-item value of `metric` (None when the item's line lacks it)."""
        return self.by_key[item].values.get(metric)


def item_key_of(result: TaskResult) -> str | None:
    """The document field a task declares as its item identity (metadata `item_key`)."""
    key = result.metadata.get("item_key")
    return str(key) if key else None


def twin_original(a: TaskResult, b: TaskResult) -> str | None:
    """The original task when one of `a`, `b` is the other's spoken twin (its metadata
    `spoken_twin.task` names the other), else None. A twin holds its original's documents in
    the original's order, so an item is identified by the original's task name and document id
    (or by the item_key both declare)."""
    for twin, other in ((a, b), (b, a)):
        spec = twin.metadata.get("spoken_twin")
        if isinstance(spec, dict) and spec.get("task") == other.task:
            return other.task
    return None


def load_items(result: TaskResult, filter_key: str, key: str | None) -> Items:
    """A task's items keyed by `key` (a document field), or by doc_id when `key` is None or a
    document lacks it. Raises ResultsError when the task has no samples log or an item id repeats."""
    if result.samples_path is None:
        raise ResultsError(f"no per-sample log for {result.task}; rerun lm_eval with --log_samples")
    recs = records(result.samples_path, filter_key)
    reason = None
    if key is None:
        reason = f"{result.task} declares no item_key in its metadata"
    else:
        lacking = [r.doc_id for r in recs if key not in r.doc]
        if lacking:
            reason = f"{len(lacking)} of {len(recs)} documents of {result.task} have no {key!r} field"
    if reason:
        return Items(result.task, DOC_ID, {str(r.doc_id): r for r in recs}, reason)
    by_key: dict[str, ItemRecord] = {}
    for r in recs:
        item = str(r.doc[key])
        if item in by_key:
            raise ResultsError(f"{result.samples_path}: item {key}={item!r} appears in documents "
                               f"{by_key[item].doc_id} and {r.doc_id}; items must be unique to be paired")
        by_key[item] = r
    return Items(result.task, key, by_key)


@dataclass
class Pairing:
    """Which items two runs share, and which they do not (each count is reported)."""

    key: str
    common: list[str]  # paired item ids, in a's document order
    only_a: list[str]
    only_b: list[str]
    mismatched: list[str]  # same id, different target (or, keyed by doc_id, different document)
    note: str | None = None  # set when the pairing fell back to doc_id
    doc_differs: list[str] = field(default_factory=list)  # same task and item id, other document: paired, reported
    no_identity: str | None = None  # why the two runs' items cannot be paired at all (then `common` is empty)


def pair_items(a: TaskResult, fa: str, b: TaskResult, fb: str) -> tuple[Items, Items, Pairing]:
    """Load and pair the items of two task results (filters `fa`, `fb`), by item identity only.

    Both tasks must name the same item_key and every document must hold it. Otherwise two runs
    of one task, or a spoken twin and its original, pair by doc_id where both documents carry the
    same content hash (a note says so, except for a twin, whose identity that is); any other two
    tasks are not paired (`Pairing.no_identity` says why, `common` is empty).
    """
    ka, kb = item_key_of(a), item_key_of(b)
    key = ka if ka == kb else None
    original = twin_original(a, b)
    ia, ib = load_items(a, fa, key), load_items(b, fb, key)
    if ka != kb:
        reason = f"{a.task} names item_key {ka!r} and {b.task} names {kb!r}"
    elif ia.key == DOC_ID or ib.key == DOC_ID:
        reason = ia.fallback_reason or ib.fallback_reason
    else:
        reason = None
    note = label = None
    if reason is not None:
        ia, ib = load_items(a, fa, None), load_items(b, fb, None)
        if a.task != b.task and original is None:
            why = (f"not paired: {reason}; the items of two tasks pair only by an item identity both "
                   "declare (metadata item_key), never by document position (doc_id)")
            return ia, ib, Pairing(DOC_ID, [], list(ia.by_key), list(ib.by_key), [], no_identity=why)
        if original is not None and key is None:
            label = f"doc_id of {original}"  # the twin's identity: its original's task and document id
        else:
            note = f"paired by doc_id where the document content (doc_hash) is the same ({reason})"
    by_doc_id = ia.key == DOC_ID
    same_docs = a.task == b.task or original is not None  # documents that must be equal under one id
    # Targets are comparable only between tasks that state them the same way (MC: index, gen: text).
    same_format = a.output_type == b.output_type
    common, mismatched, differs = [], [], []
    for item, ra in ia.by_key.items():
        rb = ib.by_key.get(item)
        if rb is None:
            continue
        other_doc = same_docs and ra.doc_hash and rb.doc_hash and ra.doc_hash != rb.doc_hash
        if same_format and ra.target.strip() != rb.target.strip():
            mismatched.append(item)
        elif by_doc_id and not (ra.doc_hash and ra.doc_hash == rb.doc_hash):
            # No identity to go by but the content: a different (or unhashed) document is not the same item.
            mismatched.append(item)
        else:
            common.append(item)
            if other_doc:
                differs.append(item)  # the same item by identity, its document changed (task version, clip)
    only_a = [k for k in ia.by_key if k not in ib.by_key]
    only_b = [k for k in ib.by_key if k not in ia.by_key]
    return ia, ib, Pairing(label or ia.key, common, only_a, only_b, mismatched, note, differs)
