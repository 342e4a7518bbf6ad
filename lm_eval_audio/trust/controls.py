"""Audio controls: did the audio reach the model? One implementation for every audio model.

`audio_control=` (a model arg of `qwen2audio` and `whisper`):

- `none` (default): the real clips.
- `silence`: each clip is replaced by zeros of its own length (after decoding and resampling,
  before the long-clip policy), so prompt length and padding stay as in the real run.
- `shuffle`: each document gets another document's clips, a fixed derangement within its task:
  the task's documents with audio, sorted by doc id, are permuted by a random single cycle
  (Sattolo's algorithm, so no document keeps its own clip) drawn from
  `numpy.random.default_rng([audio_control_seed, <task-name digest>])`. Same documents and
  seed, same mapping; everything else in the request (prompt, continuations) stays. Under data
  parallelism (`accelerate launch`) each process sees only its share of the documents, so the
  processes first gather every share (`torch.distributed.all_gather_object`): the plan is made
  over all of the task's documents, the same for any number of processes, and a donor may come
  from another process's share.

A model that scores the same on silence as on speech is not listening; on a task whose prompts
are identical across documents, a shuffle run's per-document scores are a permutation of the
real run's. The setting is recorded in the results (`as_dict`, through `get_model_info`).

`prepare` rewrites each shuffled request's audio argument in place to its donor's clips, so
lm-eval's request cache keys on the clip the model actually heard, and `--log_samples` shows it.
The derangement needs all of a task's documents at once; lm-eval's request cache hands a model
only the uncached requests, so the startup hook calls the model's `see_requests` with the full
list first (`_hook.py`). A plan, once made for a document, is kept.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CONTROLS = ("none", "silence", "shuffle")
DEFAULT_SEED = 1234


def derangement(n: int, rng: np.random.Generator) -> list[int]:
    """A random permutation of range(n) with no fixed point (one n-cycle, Sattolo's algorithm)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))  # j < i: what makes it a single cycle
        perm[i], perm[j] = perm[j], perm[i]
    return perm


_MARK = "_lm_eval_audio_control"  # (control, original audio argument) on a rewritten Instance


def _clips_of(req: Any, original: bool = False) -> list:
    from lm_eval_audio.audio import as_clip_list

    mark = getattr(req, _MARK, None)
    if original and mark is not None:
        return as_clip_list(mark[1])
    extra = req.args[2] if len(req.args) > 2 and isinstance(req.args[2], dict) else {}
    return as_clip_list(extra.get("audio"))


def _set_audio(req: Any, audio: Any) -> None:
    args = req.args
    req.arguments = (*args[:2], {**args[2], "audio": audio}, *args[3:])


Gather = Callable[[Any], list]  # one object from this process -> every process's, in rank order


def gather_ranks() -> Gather | None:
    """`torch.distributed.all_gather_object` when this process is one of several (an initialised
    process group, as `accelerate launch` or torchrun make), else None (a single process)."""
    try:
        import torch.distributed as dist
    except ImportError:  # no torch: a single process
        return None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None

    def gather(obj: Any) -> list:
        out: list = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out

    return gather


def _task_rng(seed: int, task: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(task.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([int(seed), digest])


class AudioControl:
    """Applies `audio_control` to requests' clips (see the module docstring)."""

    def __init__(self, kind: str = "none", seed: int | str = DEFAULT_SEED, *, model: str = "model") -> None:
        if kind not in CONTROLS:
            raise ValueError(f"{model}: audio_control must be one of {', '.join(CONTROLS)}, got {kind!r}")
        self.kind = kind
        self.seed = int(seed)
        self.model = model
        self._donor: dict[tuple[str, Any], Any] = {}  # (task, doc_id) -> the donor's doc_id
        self._clips: dict[tuple[str, Any], list] = {}  # (task, doc_id) -> that document's real clips
        # Tasks whose documents every process has already shared (see `plan`).
        self._gathered: set[str] = set()

    def prepare(self, requests: list[Any], gather: Gather | None = None) -> None:
        """Make every request carry the clips this control feeds it (in place): `shuffle` plans
        (see `plan`) and gives each document its donor's clips; a request rewritten by another
        control gets its own clips back first."""
        for req in requests:
            mark = getattr(req, _MARK, None)
            if mark is not None and mark[0] is not self:
                _set_audio(req, mark[1])
                delattr(req, _MARK)
        if self.kind != "shuffle":
            return
        self.plan(requests, gather)
        for req in requests:
            clips = _clips_of(req)
            if getattr(req, _MARK, None) is None and clips:
                setattr(req, _MARK, (self, req.args[2]["audio"]))
                _set_audio(req, self.clips_for(req.task_name, req.doc_id, clips))

    def plan(self, requests: Iterable[Any], gather: Gather | None = None) -> None:
        """For `shuffle`: fix each document's donor, per task, over the task's documents that
        carry audio (lm-eval Instances). Tasks already planned keep their mapping.

        `gather` (see `gather_ranks`) joins the shares of several processes, so that the plan
        covers all of a task's documents whatever the number of processes. It is called, on
        every process at once, exactly when `requests` hold a task no gather has covered yet:
        lm-eval hands each request type to every process together, each with at least one of its
        requests, and a task has one request type, so every process meets its new tasks in the
        same call. Later calls (the requests the cache left over) find their tasks covered and
        gather nothing, so a process whose requests were all cached cannot leave another waiting.
        """
        if self.kind != "shuffle":
            return
        requests = list(requests)
        docs: dict[str, dict[Any, list]] = {}
        for req in requests:
            clips = _clips_of(req, original=True)
            if clips:
                docs.setdefault(req.task_name, {}).setdefault(req.doc_id, clips)
        new_tasks = {req.task_name for req in requests} - self._gathered
        if gather is not None and new_tasks:
            shares = gather((sorted(new_tasks), {t: {d: c for d, c in ds.items() if (t, d) not in self._donor}
                                                 for t, ds in docs.items()}))
            for tasks, share in shares:
                self._gathered.update(tasks)
                for task, clips_of in share.items():
                    for doc, clips in clips_of.items():
                        docs.setdefault(task, {}).setdefault(doc, clips)
        for task, clips_of in docs.items():
            if all((task, d) in self._donor for d in clips_of):
                continue
            ids = sorted(clips_of)
            if len(ids) < 2:
                raise ValueError(
                    f"{self.model}: audio_control=shuffle on {task}: {len(ids)} document carries audio; "
                    f"a shuffle gives each document another document's clip, so it needs at least 2"
                )
            if any((task, d) in self._donor for d in ids):
                logger.warning("audio_control=shuffle: %s re-planned over %d documents", task, len(ids))
            perm = derangement(len(ids), _task_rng(self.seed, task))
            for i, doc in enumerate(ids):
                self._donor[(task, doc)] = ids[perm[i]]
                self._clips[(task, doc)] = clips_of[doc]

    def clips_for(self, task: str, doc_id: Any, clips: list) -> list:
        """The clips a request should carry under this control (`shuffle`: its donor's)."""
        if self.kind != "shuffle" or not clips:
            return clips
        donor = self._donor.get((task, doc_id))
        if donor is None:
            raise RuntimeError(f"{self.model}: audio_control=shuffle has no plan for {task} doc {doc_id}")
        return self._clips[(task, donor)]

    def donors(self, task: str) -> dict[Any, Any]:
        """doc_id -> the doc_id whose clips it received (`shuffle` only; empty otherwise)."""
        return {d: donor for (t, d), donor in self._donor.items() if t == task}

    def apply(self, array: np.ndarray) -> np.ndarray:
        """A decoded clip as this control feeds it (`silence`: zeros of the same length)."""
        if self.kind == "silence":
            return np.zeros_like(array)
        return array

    def as_dict(self) -> dict[str, Any]:
        """The setting, under the keys that `get_model_info()` adds to the results config."""
        return {"audio_control": self.kind, "audio_control_seed": self.seed if self.kind == "shuffle" else None}
