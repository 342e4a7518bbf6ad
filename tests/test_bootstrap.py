"""The project's one bootstrap (`metrics.bootstrap`): scipy's, paired where paired, one seed."""

from __future__ import annotations

import numpy as np
import pytest

from lm_eval_audio.metrics import bootstrap, wer
from lm_eval_audio.report import stats


def test_one_seed_everywhere():
    assert stats.DEFAULT_SEED == wer.BOOTSTRAP_SEED == bootstrap.SEED
    assert bootstrap.describe()["bootstrap_seed"] == bootstrap.SEED
    assert wer.normaliser_info()["bootstrap_seed"] == bootstrap.SEED  # what results files record


def test_paired_draws_move_both_scores_of_an_item_together():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 60).astype(float)
    b = np.where(rng.random(60) < 0.8, a, 1 - a)

    def diff_of_means(x, y, axis=-1):
        return y.mean(axis=axis) - x.mean(axis=axis)

    paired = bootstrap.bootstrap((a, b), diff_of_means, paired=True, n_resamples=3000)
    # Resampling the per-item differences draws the same items: the same interval, to rounding.
    assert (paired.low, paired.high) == pytest.approx(stats.paired_bootstrap_ci(b - a, n_resamples=3000), abs=1e-12)
    unpaired = bootstrap.bootstrap((a, b), diff_of_means, paired=False, n_resamples=3000)
    # a and b agree on most items, so pairing narrows the interval.
    assert paired.high - paired.low < unpaired.high - unpaired.low


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_replicates_that_are_not_finite_are_left_out():
    words = np.array([0.0, 5.0])
    edits = np.array([0.0, 1.0])
    res = bootstrap.bootstrap((edits, words), lambda e, w, axis=-1: e.sum(axis) / w.sum(axis), paired=True,
                              n_resamples=400)
    assert np.isfinite(res.distribution).all() and res.distribution.size < 400  # draws of only item 0: 0/0
    with pytest.raises(ValueError, match="not finite"):
        bootstrap.bootstrap((np.zeros(3), np.zeros(3)), lambda e, w, axis=-1: e.sum(axis) / w.sum(axis),
                            paired=True, n_resamples=10)
