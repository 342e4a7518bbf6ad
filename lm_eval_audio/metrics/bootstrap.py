"""THE bootstrap of the project: every standard error and interval by resampling comes from here.

One implementation (`scipy.stats.bootstrap`, vectorised, percentile intervals) and one seed
(`SEED`), used by WER's standard errors (`wer.bootstrap_stderr`, which lm-eval asks for with its
`bootstrap_iters`), the paired WER comparison (`wer.paired_bootstrap_wer`) and the report's
paired comparisons of per-item scores (`report.stats`). Two figures computed from the same
items, the same number of resamples and the same seed come from the same draws. The results
file and the report record the seed (`describe()`).

Draws: resample k takes the items `rng.integers(0, n, size=n)` of `numpy.random.default_rng(seed)`
(scipy's own resampling), in batches of `batch_rows(n)` resamples; with `paired=True` every
sample is drawn at the same items (both systems' scores of an item move together).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the report's CLI reads SEED at start-up
    import numpy as np

SEED = 1234  # fixed: a rerun of the same run reports the same standard errors and intervals
DEFAULT_RESAMPLES = 10_000
_CELLS_PER_BATCH = 2_000_000  # resamples x items gathered at once (bounds memory per batch)


@dataclass(frozen=True)
class BootstrapResult:
    """A bootstrap distribution and what the project reports from it."""

    distribution: np.ndarray  # finite replicates of the statistic
    low: float  # percentile interval at `confidence`
    high: float
    stderr: float  # sample standard deviation (n - 1) of the replicates, as lm-eval's `sample_stddev`
    n_resamples: int
    seed: int
    confidence: float


def batch_rows(n: int) -> int:
    """Resamples drawn per batch for `n` items (at most 1,000; fewer for very large n)."""
    return max(1, min(1000, _CELLS_PER_BATCH // max(n, 1)))


def bootstrap(data: Sequence[np.ndarray], statistic: Callable[..., np.ndarray], *, paired: bool,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = SEED, confidence: float = 0.95) -> BootstrapResult:
    """Percentile bootstrap of `statistic` over the items of `data` (one or more 1-D arrays).

    `statistic(*samples, axis=-1)` must be vectorised: it gets each sample with a leading batch
    dimension. Replicates that are not finite (a WER over a draw with no reference words) are
    left out of the interval and the standard error; none finite raises.
    """
    import warnings

    import numpy as np
    from scipy.stats import DegenerateDataWarning
    from scipy.stats import bootstrap as scipy_bootstrap

    samples = tuple(np.asarray(d, dtype=float) for d in data)
    if not samples or any(s.ndim != 1 or s.size == 0 for s in samples):
        raise ValueError(f"bootstrap needs non-empty 1-D samples, got shapes {[s.shape for s in samples]}")
    if n_resamples < 2:
        raise ValueError(f"bootstrap needs at least 2 resamples, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    with warnings.catch_warnings():
        # scipy's own interval of a distribution with non-finite replicates is not used (below).
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = scipy_bootstrap(samples, statistic, n_resamples=int(n_resamples), batch=batch_rows(samples[0].size),
                              vectorized=True, paired=paired, method="percentile", confidence_level=confidence,
                              rng=np.random.default_rng(seed))
    reps = np.asarray(res.bootstrap_distribution, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        raise ValueError("every resample's statistic is undefined (not finite)")
    alpha = (1 - confidence) / 2
    # Percentiles of the finite replicates (scipy's own interval would turn NaN on any non-finite one).
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    stderr = float(reps.std(ddof=1)) if reps.size > 1 else float("nan")
    return BootstrapResult(reps, float(low), float(high), stderr, int(n_resamples), int(seed), confidence)


def describe() -> dict[str, object]:
    """How standard errors and intervals are bootstrapped, for results files and reports."""
    from importlib.metadata import version

    return {"bootstrap": f"scipy.stats.bootstrap {version('scipy')}, percentile, vectorised, paired where paired",
            "bootstrap_seed": SEED}
