"""The one WER: hand-computed cases, jiwer agreement on raw strings, lm-eval registration."""

from __future__ import annotations

import math

import jiwer
import pytest

from lm_eval_audio.metrics import wer, wer_lm_eval


def test_raw_counts_hand_computed():
    # "the cat sat on the mat" -> "the cat sit on mat": sat->sit (S), second "the" dropped (D).
    e = wer.word_errors(["the cat sat on the mat"], ["the cat sit on mat"], normalise=False)
    assert (e.substitutions, e.deletions, e.insertions, e.hits) == (1, 1, 0, 4)
    assert e.reference_words == 6
    assert e.wer == pytest.approx(2 / 6)


def test_insertions_counted():
    e = wer.word_errors(["a b"], ["a x b y"], normalise=False)
    assert (e.substitutions, e.deletions, e.insertions) == (0, 0, 2)
    assert e.wer == pytest.approx(1.0)


def test_unnormalised_ignores_case_and_keeps_punctuation_and_spelling():
    refs, hyps = ["Hello, world!"], ["hello world"]
    assert wer.corpus_wer(refs, hyps) == 0.0
    assert wer.corpus_wer(refs, hyps, normalise=False) == pytest.approx(1.0)  # "hello," and "world!" differ
    # LibriSpeech references are upper case: a perfect lower-case transcript is 0, not 1.
    ref = "HE HOPED THERE WOULD BE STEW FOR DINNER"
    assert wer.corpus_wer([ref], ["he hoped there would be stew for dinner"], normalise=False) == 0.0
    assert wer.corpus_wer([ref], ["He hoped there would be stew for dinner."], normalise=False) == pytest.approx(1 / 8)
    assert wer.corpus_wer(["THE COLOUR"], ["the color"], normalise=False) == pytest.approx(1 / 2)
    assert wer.corpus_wer(["THE COLOUR"], ["the color"]) == 0.0


def test_spelling_map_is_applied():
    refs, hyps = ["The colour of the theatre is grey."], ["the color of the theater is gray"]
    assert wer.corpus_wer(refs, hyps) == 0.0
    # Whisper's normaliser without the map leaves British spellings alone: 3 substitutions of 7.
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    bare = EnglishTextNormalizer({})
    assert jiwer.wer(bare(refs[0]), bare(hyps[0])) == pytest.approx(3 / 7)
    assert len(wer.english_spelling_map()) == 1739


def test_numbers_are_unified():
    assert wer.corpus_wer(["twenty five dollars"], ["$25"]) == 0.0
    assert wer.normalize("Mr. Smith isn't here") == "mister smith is not here"


def test_empty_hypothesis_is_all_deletions():
    e = wer.word_errors(["a b c"], [""])
    assert (e.substitutions, e.deletions, e.insertions, e.hits) == (0, 3, 0, 0)
    assert e.wer == 1.0


def test_empty_reference_adds_insertions_only():
    e = wer.word_errors(["", "x y"], ["a b", "x y"])
    assert (e.insertions, e.reference_words) == (2, 2)
    assert e.wer == pytest.approx(1.0)
    assert wer.corpus_wer([""], [""]) == 0.0
    assert math.isinf(wer.corpus_wer([""], ["something"]))
    # Punctuation-only references normalise to nothing too.
    assert wer.corpus_wer(["[noise]"], [""]) == 0.0


def test_corpus_level_not_mean_of_utterances():
    refs, hyps = ["a", "a b c d"], ["b", "a b c d"]
    # One error over five words; the mean of per-utterance WERs would be (1 + 0) / 2.
    assert wer.corpus_wer(refs, hyps) == pytest.approx(0.2)


def test_agrees_with_jiwer_on_raw_strings():
    refs = [
        "It was the best of times, it was the worst of times.",
        "I  said:   'colour'",
        "one two three four five",
        "",
        "the quick brown fox",
    ]
    hyps = [
        "it was the best of times it was the worst of time",
        "I said colour",
        "one too three for five six",
        "extra words",
        "",
    ]
    lower = [r.lower() for r in refs], [h.lower() for h in hyps]
    assert wer.corpus_wer(refs, hyps, normalise=False) == pytest.approx(jiwer.wer(*lower))
    out = jiwer.process_words(*lower)
    e = wer.word_errors(refs, hyps, normalise=False)
    assert (e.substitutions, e.deletions, e.insertions, e.hits) == (
        out.substitutions, out.deletions, out.insertions, out.hits)


def test_report_parts_sum_to_wer():
    refs, hyps = ["the colour red", "a b c d e"], ["the color read extra", "a c d e"]
    r = wer.wer_report(refs, hyps)
    assert (r["substitutions"], r["deletions"], r["insertions"], r["reference_words"]) == (1, 1, 1, 8)
    assert r["substitution_rate"] + r["deletion_rate"] + r["insertion_rate"] == pytest.approx(r["wer"])
    assert r["wer"] == pytest.approx(3 / 8)
    assert r["wer_unnormalised"] == pytest.approx(jiwer.wer(refs, hyps))  # already lower case


def test_bad_input_names_the_item():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer.corpus_wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="utterance 1"):
        wer.corpus_wer(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="one reference and one prediction"):
        wer_lm_eval.wer_pair(["a", "b"], ["a"])


def test_registered_with_lm_eval():
    from lm_eval.api import registry

    from lm_eval_audio.registration import register_components

    register_components()  # what each of our task folders' utils.py does as the task loads
    items = [wer_lm_eval.wer_pair(references=[r], predictions=[h]) for r, h in
             [("The colour red.", "the color red"), ("a b c d", "a b x")]]
    expected = {
        "wer": 2 / 7,
        "wer_unnormalised": wer.corpus_wer(*zip(*items), normalise=False),
        "wer_substitutions": 1 / 7,
        "wer_deletions": 1 / 7,
        "wer_insertions": 0.0,
    }
    for name, value in expected.items():
        assert registry.get_metric(name) is wer_lm_eval.wer_pair
        assert registry.get_metric_aggregation(name)(items) == pytest.approx(value)
        assert registry.get_aggregation(name) is registry.get_metric_aggregation(name)
        assert registry.is_higher_better(name) is False


def test_yaml_without_aggregation_key_uses_ours():
    """`- metric: wer` with no `aggregation:` must work in a fresh process, where lm-eval looks
    the default aggregation up by inverting its registry (which lazy placeholders would miss).
    Before one of our tasks registers them, lm-eval's registries hold none of our metrics."""
    import subprocess
    import sys

    code = """
import datasets
from lm_eval.api import registry
from lm_eval.api.task import ConfigurableTask
assert "wer" not in registry.metric_registry and "choice_letter" not in registry.filter_registry
from lm_eval_audio.registration import register_components
register_components()
from lm_eval_audio.metrics.wer_lm_eval import METRICS, agg_wer
def load(**kwargs):
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([{"text": "a b"}])})
task = ConfigurableTask(config=dict(
    task="wer_probe", output_type="generate_until", custom_dataset=load, test_split="test",
    doc_to_text="x", doc_to_target="{{text}}", metric_list=[{"metric": m} for m in METRICS]))
assert task.aggregation()["wer"] is agg_wer, task.aggregation()
assert task.higher_is_better()["wer"] is False
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


# --- bootstrap standard error and paired comparison ----------------------------------------

# Three utterances whose normalised edit counts are worked out by hand:
#   "a b c d" -> "a b c d"        0 errors / 4 words
#   "the cat sat" -> "the cat"    1 deletion / 3 words
#   "x y" -> "z y w"              1 substitution + 1 insertion / 2 words
HAND = (["a b c d", "the cat sat", "x y"], ["a b c d", "the cat", "z y w"])
HAND_COUNTS = [(0, 4), (1, 3), (2, 2)]  # (errors, words)


def test_utterance_counts_are_the_hand_counts():
    per = wer.utterance_errors(*HAND)
    assert [(e.errors, e.reference_words) for e in per] == HAND_COUNTS
    assert sum(per, wer.WordErrors()) == wer.word_errors(*HAND)


def test_bootstrap_stderr_equals_the_hand_worked_bootstrap():
    import numpy as np

    iters = 2500  # scipy draws in batches of metrics.bootstrap.batch_rows(3) = 1000: 1000, 1000, 500
    rng = np.random.default_rng(wer.BOOTSTRAP_SEED)
    replicates = []
    for size in (1000, 1000, 500):
        for row in rng.integers(0, 3, size=(size, 3)):
            errors = sum(HAND_COUNTS[i][0] for i in row)
            words = sum(HAND_COUNTS[i][1] for i in row)
            replicates.append(errors / words)
    mean = sum(replicates) / iters
    expected = math.sqrt(sum((x - mean) ** 2 for x in replicates) / (iters - 1))
    assert wer.bootstrap_stderr(*HAND, iters) == pytest.approx(expected, rel=1e-12)
    assert wer.bootstrap_stderr(*HAND, iters) == wer.bootstrap_stderr(*HAND, iters)  # seeded
    assert wer.bootstrap_stderr(*HAND, iters, seed=7) != pytest.approx(expected, rel=1e-6)


def test_bootstrap_stderr_converges_to_the_exact_bootstrap_distribution():
    # Two utterances (1/2 and 0/3): resamples {1,1}: 2/4, {2,2}: 0/6, mixed (p = 1/2): 1/5.
    refs, hyps = ["a b", "c d e"], ["a x", "c d e"]
    values, probs = [0.5, 0.0, 0.2], [0.25, 0.25, 0.5]
    mean = sum(v * p for v, p in zip(values, probs))
    exact = math.sqrt(sum(p * (v - mean) ** 2 for v, p in zip(values, probs)))
    assert wer.bootstrap_stderr(refs, hyps, 20_000) == pytest.approx(exact, rel=0.02)


def test_lm_eval_reports_wer_stderr_by_our_bootstrap():
    from lm_eval import evaluator_utils
    from lm_eval.api import metrics

    items = list(zip(*HAND))
    for module in (metrics, evaluator_utils):
        fn = module.stderr_for_metric(wer_lm_eval.agg_wer, 500)
        assert fn is not None and fn(items) == wer.bootstrap_stderr(*HAND, 500)
        assert module.stderr_for_metric(wer_lm_eval.agg_wer, 0) is None
        assert module.stderr_for_metric(metrics.mean, 10) is metrics.mean_stderr  # lm-eval's own untouched
    raw = evaluator_utils.stderr_for_metric(wer_lm_eval.agg_wer_unnormalised, 500)(items)
    assert raw == wer.bootstrap_stderr(*HAND, 500, normalise=False)


def test_paired_bootstrap_of_corpus_wer():
    refs = ["a b c d", "the cat sat", "x y", "red green blue"]
    worse = ["a b c", "the cat", "z y", "red green"]
    same = wer.paired_bootstrap_wer(refs, worse, worse, iters=500)
    assert (same.difference, same.ci_low, same.ci_high, same.p_value, same.significant) == (0.0, 0.0, 0.0, 1.0, False)
    better = wer.paired_bootstrap_wer(refs, worse, refs, iters=2000)
    assert better.wer_a == pytest.approx(4 / 12) and better.wer_b == 0.0
    assert better.difference == pytest.approx(-4 / 12)
    # b fixes an error in every utterance, so every replicate improves: the CI excludes 0.
    assert better.ci_high < 0 and better.significant and better.p_value == 0.0
    assert better.ci_low <= better.difference <= better.ci_high
    assert better == wer.paired_bootstrap_wer(refs, worse, refs, iters=2000)  # seeded
    with pytest.raises(ValueError, match="4 references, 4 and 3 hypotheses"):
        wer.paired_bootstrap_wer(refs, worse, refs[:3])


def test_normaliser_is_named_with_its_version():
    from importlib.metadata import version

    info = wer.normaliser_info()
    assert "EnglishTextNormalizer" in info["wer_normaliser"]
    assert info["wer_normaliser_version"] == f"transformers {version('transformers')}, jiwer {version('jiwer')}"
    assert len(info["wer_spelling_map_sha256"]) == 64 and info["bootstrap_seed"] == wer.BOOTSTRAP_SEED == 1234
    assert info["bootstrap"].startswith("scipy.stats.bootstrap")


def test_seed_wer_hand_worked():
    from lm_eval_audio.metrics.wer import seed_wer

    refs = ["MR. SMITH WENT TO ST. LOUIS.", "HELLO WORLD"]
    hyps = ["Mister Smith went to saint Louis", "hello word"]
    # One string each: "mister smith went to saint louis hello world" (8 words) against
    # "mister smith went to saint louis hello word": one substitution.
    assert seed_wer(refs, hyps) == pytest.approx(1 / 8)
    # No Whisper normaliser: "colour"/"color" and "10"/"ten" count as errors, case and punctuation do not.
    assert seed_wer(["The colour is ten."], ["the color is 10"]) == pytest.approx(2 / 4)
    # Words align across utterance boundaries: a word moved to the next utterance costs nothing.
    assert seed_wer(["a b", "c d"], ["a", "b c d"]) == 0.0
    assert seed_wer([""], [""]) == 0.0


def test_seed_wer_is_an_lm_eval_metric():
    from lm_eval.api.registry import get_aggregation, get_metric

    pairs = [get_metric("wer_seed")(["DR. NO"], ["doctor no"]), get_metric("wer_seed")(["YES"], ["no"])]
    assert get_aggregation("wer_seed")(pairs) == pytest.approx(1 / 3)
