"""Paired statistics over per-item scores of two runs on the same items.

Used for the degradation view (text vs speech, same model, same questions) and for adapter
before/after views. Both runs score item i, so the comparison is paired: the spread of the
per-item difference, not of each run's accuracy, sets the uncertainty.

- Difference and its standard error: mean of d_i = b_i - a_i, and sd(d)/sqrt(n) with the
  n-1 sample standard deviation (the same estimator lm-eval uses for its `_stderr` fields).
- 95% confidence interval: percentile paired bootstrap (resampling items, so both runs'
  scores of an item move together), the project's one bootstrap (`metrics.bootstrap`:
  `scipy.stats.bootstrap`, `paired=True`, one fixed seed), so a report is reproducible.
- Flips: items right in `a` and wrong in `b` and the reverse, when scores are 0/1.
- Exact McNemar test on the discordant pairs (two-sided binomial test with p = 1/2), when
  scores are 0/1; `None` otherwise, since McNemar is defined only for binary outcomes.
- Corpus WER has no per-item score: `paired_wer_bootstrap` resamples utterances and compares
  the two systems' corpus WERs on each draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lm_eval_audio.metrics.bootstrap import DEFAULT_RESAMPLES, SEED, bootstrap

DEFAULT_SEED = SEED  # the project's one bootstrap seed


@dataclass(frozen=True)
class PairedStats:
    """Paired comparison of run b against run a on the same n items (difference = b - a)."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    diff_stderr: float
    ci_low: float
    ci_high: float
    confidence: float
    binary: bool
    a_only: int | None  # items scored 1 in a and 0 in b (e.g. right as text, wrong as speech)
    b_only: int | None  # items scored 0 in a and 1 in b
    both: int | None
    neither: int | None
    mcnemar_p: float | None
    n_resamples: int = DEFAULT_RESAMPLES  # of the bootstrap behind ci_low and ci_high
    seed: int = SEED  # the bootstrap's seed, so a report says how to redraw its intervals

    @property
    def a_only_share(self) -> float | None:
        """Share of all paired items that flip from right (a) to wrong (b)."""
        return None if self.a_only is None else self.a_only / self.n

    @property
    def b_only_share(self) -> float | None:
        """Share of all paired items that flip from wrong (a) to right (b)."""
        return None if self.b_only is None else self.b_only / self.n


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (1.0 when there are none)."""
    from scipy.stats import binomtest

    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be non-negative, got {a_only} and {b_only}")
    k = a_only + b_only
    if k == 0:
        return 1.0
    return float(binomtest(min(a_only, b_only), k, 0.5, alternative="two-sided").pvalue)


def paired_bootstrap_ci(
    diffs: np.ndarray, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean per-item difference.

    Resampling the per-item differences is the paired bootstrap: each draw takes an item with
    both of its scores.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"need a non-empty 1-D array of differences, got shape {d.shape}")
    if np.all(d == d[0]):
        # Every resample has the same mean; scipy warns about degenerate data here.
        return float(d[0]), float(d[0])
    res = bootstrap((d,), np.mean, paired=True, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return res.low, res.high


def paired_stats(
    a: np.ndarray | list[float], b: np.ndarray | list[float], confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
) -> PairedStats:
    """Compare per-item scores `b` against `a` (aligned: position i is the same item in both)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no paired items to compare")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired scores contain NaN or infinite values")
    n = int(a.size)
    d = b - a
    diff = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    lo, hi = paired_bootstrap_ci(d, confidence, n_resamples, seed)
    binary = bool(np.all(np.isin(a, (0.0, 1.0))) and np.all(np.isin(b, (0.0, 1.0))))
    if binary:
        a_only = int(np.sum((a == 1) & (b == 0)))
        b_only = int(np.sum((a == 0) & (b == 1)))
        both = int(np.sum((a == 1) & (b == 1)))
        neither = n - a_only - b_only - both
        p = mcnemar_exact(a_only, b_only)
    else:
        a_only = b_only = both = neither = None
        p = None
    return PairedStats(
        n=n, mean_a=float(a.mean()), mean_b=float(b.mean()), diff=diff, diff_stderr=se,
        ci_low=lo, ci_high=hi, confidence=confidence, binary=binary, a_only=a_only,
        b_only=b_only, both=both, neither=neither, mcnemar_p=p, n_resamples=n_resamples, seed=seed,
    )


def paired_wer_bootstrap(
    references: list[str], hypotheses_a: list[str], hypotheses_b: list[str], confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, normalise: bool = True,
) -> PairedStats:
    """Corpus WER of system b minus system a on the same utterances, with a paired bootstrap CI,
    as a `PairedStats` row of the report.

    Position i is one utterance: `references[i]`, transcribed by a as `hypotheses_a[i]` and by b
    as `hypotheses_b[i]`. The statistics are `lm_eval_audio.wer.paired_bootstrap_wer` (the one
    WER): each resample draws utterances with replacement (seeded) and takes the difference of
    the two corpus WERs over the same draw; `diff_stderr` is the spread of those differences.
    """
    from lm_eval_audio.metrics.wer import paired_bootstrap_wer

    w = paired_bootstrap_wer(references, hypotheses_a, hypotheses_b, iters=n_resamples, seed=seed,
                             confidence=confidence, normalise=normalise)
    return PairedStats(
        n=w.utterances, mean_a=w.wer_a, mean_b=w.wer_b, diff=w.difference, diff_stderr=w.difference_stderr,
        ci_low=w.ci_low, ci_high=w.ci_high, confidence=confidence, binary=False,
        a_only=None, b_only=None, both=None, neither=None, mcnemar_p=None, n_resamples=n_resamples, seed=seed,
    )
