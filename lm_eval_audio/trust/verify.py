"""`verify_batch=N`: rescore N sampled requests alone (batch 1) and record how far the batched
scores were from them.

Batching pads rows and changes kernel shapes, which can move a score; a user who trusts a
batched number wants that movement measured, not assumed. Off by default (N = 0). Per request
type the figure is the largest absolute difference of the loglikelihood, and for generation
the number of sampled requests whose text differs. The sample is drawn with
`numpy.random.default_rng(seed)` over each call's requests. Results reach the results file
through `get_model_info()` (`as_dict`): `verify_batch` (N), `verify_batch_max_abs_diff` (the
largest loglikelihood difference; None when none was checked), `verify_batch_loglikelihood_checked`,
`verify_batch_generation_checked` and `verify_batch_generation_mismatches`; the report shows every
`verify_batch*` key as the run's check.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_SEED = 1234


class BatchVerification:
    """Draws the requests to rescore and keeps the largest differences found."""

    def __init__(self, n: int | str = 0, seed: int = DEFAULT_SEED, *, model: str = "model") -> None:
        n = int(n)
        if n < 0:
            raise ValueError(f"{model}: verify_batch must be >= 0 (0 = off), got {n}")
        self.n, self.seed, self.model = n, int(seed), model
        self.loglikelihood_checked = 0
        self.loglikelihood_max_abs_diff: float | None = None
        self.generation_checked = 0
        self.generation_mismatches = 0

    def sample(self, count: int) -> list[int]:
        """Indices (sorted) of the requests to rescore among `count`; empty when off."""
        if self.n == 0 or count == 0:
            return []
        rng = np.random.default_rng(self.seed)
        return sorted(int(i) for i in rng.choice(count, size=min(self.n, count), replace=False))

    def record_loglikelihood(self, batched: list[float], alone: list[float]) -> None:
        """Record the batched and batch-1 loglikelihoods of the sampled requests."""
        if not alone:
            return
        diff = max(abs(a - b) for a, b in zip(batched, alone, strict=True))
        self.loglikelihood_checked += len(alone)
        self.loglikelihood_max_abs_diff = max(diff, self.loglikelihood_max_abs_diff or 0.0)
        logger.info("%s verify_batch: %d loglikelihoods rescored alone, largest difference %.3g",
                    self.model, len(alone), diff)

    def record_generation(self, batched: list[str], alone: list[str]) -> None:
        """Record the batched and batch-1 generations of the sampled requests."""
        if not alone:
            return
        mismatches = sum(a != b for a, b in zip(batched, alone, strict=True))
        self.generation_checked += len(alone)
        self.generation_mismatches += mismatches
        if mismatches:
            logger.warning("%s verify_batch: %d of %d generations differ at batch 1", self.model, mismatches, len(alone))

    def as_dict(self) -> dict[str, Any]:
        """The figures under the keys that `get_model_info()` adds to the results config."""
        return {
            "verify_batch": self.n,
            "verify_batch_max_abs_diff": self.loglikelihood_max_abs_diff,  # of the loglikelihoods
            "verify_batch_loglikelihood_checked": self.loglikelihood_checked,
            "verify_batch_generation_checked": self.generation_checked,
            "verify_batch_generation_mismatches": self.generation_mismatches,
        }
