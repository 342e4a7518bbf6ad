"""RTFx: inverse real-time factor, audio seconds transcribed per second of compute.

RTFx = total audio seconds / total compute seconds, as the Open ASR Leaderboard reports it: the
clock runs around feature extraction, the model and token decoding of each batch, not around
reading and resampling audio files (the leaderboard's datasets arrive decoded) nor model loading.
Higher is faster; 100 means an hour of audio in 36 s.

How it reaches the user: a model class owns one `RTFxByTask`, wraps each generation batch that
carries audio in `meter.measure(task, audio_seconds)` (batches without audio are not measured:
they would add compute and no audio), keeps each batch within one task, logs `meter.summary()`
when its `generate_until` returns, and adds `meter.as_dict()` to `get_model_info()`. lm-eval's
`simple_evaluate` merges `get_model_info()` into `results["config"]` after all tasks ran
(lm_eval/evaluator.py), so the results JSON carries `rtfx_per_task` (`{task: {rtfx,
rtfx_audio_seconds, rtfx_compute_seconds, rtfx_clips}}`; read an ASR task's figure there) and the
same four keys at the top level over every measured batch of the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def _synchronize() -> None:
    # CUDA kernels run asynchronously: without a sync the clock would stop before the GPU does.
    import sys

    torch = sys.modules.get("torch")  # never import torch just for this (ctranslate2 runs without it)
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@dataclass
class RTFxMeter:
    """Accumulates audio seconds and compute seconds over a run."""

    audio_seconds: float = 0.0
    compute_seconds: float = 0.0
    clips: int = 0

    @contextmanager
    def measure(self, audio_seconds: float, clips: int = 1) -> Iterator[None]:
        """Time the block as the compute spent on `clips` clips totalling `audio_seconds`."""
        if audio_seconds < 0:
            raise ValueError(f"audio_seconds must be >= 0, got {audio_seconds}")
        _synchronize()
        start = time.perf_counter()
        yield
        _synchronize()
        self.add(audio_seconds, time.perf_counter() - start, clips)

    def add(self, audio_seconds: float, compute_seconds: float, clips: int = 1) -> None:
        """Record one measured batch."""
        self.audio_seconds += float(audio_seconds)
        self.compute_seconds += float(compute_seconds)
        self.clips += int(clips)

    @property
    def rtfx(self) -> float | None:
        """Audio seconds per compute second; None before anything was measured."""
        if self.compute_seconds <= 0:
            return None
        return self.audio_seconds / self.compute_seconds

    def as_dict(self) -> dict[str, float | int | None]:
        """The figures under the keys that `get_model_info()` adds to lm-eval's results config."""
        return {
            "rtfx": self.rtfx,
            "rtfx_audio_seconds": round(self.audio_seconds, 3),
            "rtfx_compute_seconds": round(self.compute_seconds, 3),
            "rtfx_clips": self.clips,
        }

    def summary(self) -> str:
        """One log line."""
        if self.rtfx is None:
            return "RTFx: nothing measured"
        return (
            f"RTFx {self.rtfx:.1f}: {self.audio_seconds:.1f} s of audio in {self.compute_seconds:.2f} s "
            f"of compute over {self.clips} clips"
        )


class RTFxByTask:
    """One `RTFxMeter` per task, plus their total."""

    def __init__(self) -> None:
        self.tasks: dict[str, RTFxMeter] = {}
        self.total = RTFxMeter()

    @contextmanager
    def measure(self, task: str, audio_seconds: float, clips: int = 1) -> Iterator[None]:
        """Time the block as compute spent on `task`'s clips (see `RTFxMeter.measure`)."""
        meter = RTFxMeter()
        with meter.measure(audio_seconds, clips):
            yield
        self.tasks.setdefault(task, RTFxMeter()).add(meter.audio_seconds, meter.compute_seconds, meter.clips)
        self.total.add(meter.audio_seconds, meter.compute_seconds, meter.clips)

    def add(self, task: str, audio_seconds: float, compute_seconds: float, clips: int = 1) -> None:
        """Record a block measured by the caller (e.g. the wall clock of served requests)."""
        self.tasks.setdefault(task, RTFxMeter()).add(audio_seconds, compute_seconds, clips)
        self.total.add(audio_seconds, compute_seconds, clips)

    @property
    def clips(self) -> int:
        """Clips measured over all tasks."""
        return self.total.clips

    def as_dict(self) -> dict:
        """Totals under the `RTFxMeter.as_dict` keys, and `rtfx_per_task`."""
        return {**self.total.as_dict(), "rtfx_per_task": {t: m.as_dict() for t, m in sorted(self.tasks.items())}}

    def summary(self) -> str:
        """One log line per task."""
        if not self.tasks:
            return "RTFx: nothing measured"
        return "; ".join(f"{t}: {m.summary()}" for t, m in sorted(self.tasks.items()))
