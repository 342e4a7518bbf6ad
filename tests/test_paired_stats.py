"""Paired statistics against a small example worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm_eval_audio.report.stats import mcnemar_exact, paired_bootstrap_ci, paired_stats

# Ten questions, scored as text (a) and as speech (b).
#   item:  0 1 2 3 4 5 6 7 8 9
#   text:  1 1 1 1 1 1 0 0 0 0
#   speech 1 1 0 0 0 1 0 1 0 0
# Right as text, wrong as speech: items 2, 3, 4 -> 3.  Wrong as text, right as speech: item 7 -> 1.
# Both right: 0, 1, 5 -> 3.  Both wrong: 6, 8, 9 -> 3.
# d = speech - text = [0,0,-1,-1,-1,0,0,1,0,0]; mean -0.2.
# sum (d - mean)^2 = 6*0.04 + 3*0.64 + 1.44 = 3.6; sample variance 3.6/9 = 0.4;
# stderr = sqrt(0.4/10) = 0.2.
# Exact McNemar: 4 discordant pairs, min count 1: p = 2 * (C(4,0) + C(4,1)) / 2^4 = 10/16 = 0.625.
TEXT = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
SPEECH = [1, 1, 0, 0, 0, 1, 0, 1, 0, 0]


def test_hand_computed_example():
    s = paired_stats(TEXT, SPEECH, n_resamples=2000)
    assert s.n == 10 and s.binary
    assert s.mean_a == pytest.approx(0.6) and s.mean_b == pytest.approx(0.4)
    assert s.diff == pytest.approx(-0.2)
    assert s.diff_stderr == pytest.approx(0.2)
    assert (s.a_only, s.b_only, s.both, s.neither) == (3, 1, 3, 3)
    assert s.a_only_share == pytest.approx(0.3) and s.b_only_share == pytest.approx(0.1)
    assert s.mcnemar_p == pytest.approx(0.625)
    # A resampled mean of d can only be a multiple of 1/10, from -1 to 1.
    for end in (s.ci_low, s.ci_high):
        assert end * 10 == pytest.approx(round(end * 10))
    assert -1 <= s.ci_low <= s.diff <= s.ci_high <= 1


def test_mcnemar_exact_by_hand():
    # 0 vs 5 discordant: p = 2 * (1/32) = 0.0625; 2 vs 2: p = 1; none: 1.
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    assert mcnemar_exact(2, 2) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0
    # 1 vs 9: 2 * (1 + 10) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 2)


def test_bootstrap_interval_agrees_with_the_normal_interval_on_many_items():
    rng = np.random.default_rng(3)
    a = (rng.random(2000) < 0.6).astype(float)
    b = np.where(rng.random(2000) < 0.85, a, 1 - a)
    s = paired_stats(a, b, n_resamples=4000)
    half = 1.959964 * s.diff_stderr
    assert s.ci_low == pytest.approx(s.diff - half, abs=0.004)
    assert s.ci_high == pytest.approx(s.diff + half, abs=0.004)


def test_bootstrap_is_reproducible_and_degenerate_data_gives_a_point():
    d = np.array([0.0, 1.0, -1.0, 0.0, 1.0, 1.0])
    assert paired_bootstrap_ci(d, seed=7, n_resamples=500) == paired_bootstrap_ci(d, seed=7, n_resamples=500)
    assert paired_bootstrap_ci(np.full(5, 0.25)) == (0.25, 0.25)


def test_identical_runs_have_no_difference():
    s = paired_stats(TEXT, TEXT)
    assert s.diff == 0 and s.ci_low == s.ci_high == 0 and s.mcnemar_p == 1.0
    assert s.a_only == s.b_only == 0


def test_non_binary_scores_have_no_flips_or_mcnemar():
    s = paired_stats([0.5, 0.2, 0.9], [0.4, 0.1, 0.7], n_resamples=500)
    assert not s.binary and s.a_only is None and s.mcnemar_p is None
    assert s.diff == pytest.approx(-0.4 / 3)
    # d = [-0.1, -0.1, -0.2]: sample sd = sqrt(((1/30)^2*2 + (2/30)^2)/2), stderr = sd/sqrt(3)
    assert s.diff_stderr == pytest.approx(math.sqrt(((1 / 30) ** 2 * 2 + (2 / 30) ** 2) / 2) / math.sqrt(3))


@pytest.mark.parametrize("a,b,match", [
    ([1, 0], [1], "equal length"),
    ([], [], "no paired items"),
    ([1, float("nan")], [1, 0], "NaN"),
])
def test_bad_input_is_refused(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_stats(a, b)


# Paired corpus-WER bootstrap, by hand. Two utterances:
#   utt 0: reference "a b c d" (4 words); system a exact (0 errors), system b "a x c d" (1 error)
#   utt 1: reference "e f" (2 words); system a "e x" (1 error), system b "x x" (2 errors)
# Corpus WER a = 1/6, b = 3/6, b - a = 1/3. A resample of two utterances is
#   (0, 0): (2 - 0) / 8 = 0.25;  (0, 1) or (1, 0): (3 - 1) / 6 = 1/3;  (1, 1): (4 - 2) / 4 = 0.5
# with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5% quantiles are 0.25 and 0.5.
WER_REFS = ["a b c d", "e f"]
WER_A = ["a b c d", "e x"]
WER_B = ["a x c d", "x x"]


def test_paired_wer_bootstrap_by_hand():
    from lm_eval_audio.report.stats import paired_wer_bootstrap

    s = paired_wer_bootstrap(WER_REFS, WER_A, WER_B, n_resamples=4000, seed=3)
    assert s.n == 2 and not s.binary and s.mcnemar_p is None
    assert s.mean_a == pytest.approx(1 / 6) and s.mean_b == pytest.approx(0.5)
    assert s.diff == pytest.approx(1 / 3)
    assert (s.ci_low, s.ci_high) == (pytest.approx(0.25), pytest.approx(0.5))


def test_paired_wer_bootstrap_is_corpus_wer_of_each_resample():
    """Each draw's difference equals corpus_wer(b) - corpus_wer(a) over the drawn utterances."""
    from lm_eval_audio.report.stats import paired_wer_bootstrap
    from lm_eval_audio.metrics.wer import corpus_wer

    rng = np.random.default_rng(11)
    words = "the cat sat on a mat with hat".split()
    refs = [" ".join(rng.choice(words, size=int(rng.integers(1, 7)))) for _ in range(12)]
    hyp_a = [" ".join(w if rng.random() < 0.8 else "dog" for w in r.split()) for r in refs]
    hyp_b = [" ".join(w if rng.random() < 0.5 else "dog" for w in r.split()) for r in refs]
    s = paired_wer_bootstrap(refs, hyp_a, hyp_b, n_resamples=300, seed=5, confidence=0.9)
    idx = np.random.default_rng(5).integers(0, 12, size=(300, 12))
    direct = np.array([corpus_wer([refs[i] for i in draw], [hyp_b[i] for i in draw])
                       - corpus_wer([refs[i] for i in draw], [hyp_a[i] for i in draw]) for draw in idx])
    assert s.diff == pytest.approx(corpus_wer(refs, hyp_b) - corpus_wer(refs, hyp_a))
    assert s.ci_low == pytest.approx(np.quantile(direct, 0.05))
    assert s.ci_high == pytest.approx(np.quantile(direct, 0.95))
    assert s.diff_stderr == pytest.approx(direct.std(ddof=1))


def test_paired_wer_bootstrap_refuses_bad_input():
    from lm_eval_audio.report.stats import paired_wer_bootstrap

    with pytest.raises(ValueError, match="2 references, 1 and 2 hypotheses"):
        paired_wer_bootstrap(WER_REFS, WER_A[:1], WER_B)
    with pytest.raises(ValueError, match="paired WER over no utterances"):
        paired_wer_bootstrap([], [], [])
