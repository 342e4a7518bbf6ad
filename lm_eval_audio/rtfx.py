"""RTFx: inverse real-time factor, audio seconds transcribed per second of compute.

RTFx = total audio seconds / total compute seconds, as the Open ASR Leaderboard reports it: the
clock runs around feature extraction, the model and token decoding of each batch, not around
reading and resampling audio files (the leaderboard's datasets arrive decoded) nor model loading.
Higher is faster; 100 means an hour of audio in 36 s.

How it reaches the user: a model class owns one `RTFxMeter`, wraps each batch in
`meter.measure(audio_seconds)`, logs `meter.summary()` when its `generate_until` returns, and adds
`meter.as_dict()` to `get_model_info()`. lm-eval's `simple_evaluate` merges `get_model_info()`
into `results["config"]` after all tasks ran (lm_eval/evaluator.py), so the results JSON
carries `rtfx`, `rtfx_audio_seconds`, `rtfx_compute_seconds` and `rtfx_clips` for the whole run
(lm-eval batches all tasks' generate_until requests together, so per-task figures need one task
per run, which is how ASR benchmarks run anyway).
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
