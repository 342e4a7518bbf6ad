"""The one WER: hand-computed cases, jiwer agreement on raw strings, lm-eval registration."""

from __future__ import annotations

import math

import jiwer
import pytest

from lm_eval_audio import wer


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


def test_punctuation_and_case_only_matter_unnormalised():
    refs, hyps = ["Hello, world!"], ["hello world"]
    assert wer.corpus_wer(refs, hyps) == 0.0
    assert wer.corpus_wer(refs, hyps, normalise=False) == pytest.approx(1.0)  # both words differ


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
    assert wer.corpus_wer(refs, hyps, normalise=False) == pytest.approx(jiwer.wer(refs, hyps))
    out = jiwer.process_words(refs, hyps)
    e = wer.word_errors(refs, hyps, normalise=False)
    assert (e.substitutions, e.deletions, e.insertions, e.hits) == (
        out.substitutions, out.deletions, out.insertions, out.hits)


def test_report_parts_sum_to_wer():
    refs, hyps = ["the colour red", "a b c d e"], ["the color read extra", "a c d e"]
    r = wer.wer_report(refs, hyps)
    assert (r["substitutions"], r["deletions"], r["insertions"], r["reference_words"]) == (1, 1, 1, 8)
    assert r["substitution_rate"] + r["deletion_rate"] + r["insertion_rate"] == pytest.approx(r["wer"])
    assert r["wer"] == pytest.approx(3 / 8)
    assert r["wer_unnormalised"] == pytest.approx(jiwer.wer(refs, hyps))


def test_bad_input_names_the_item():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer.corpus_wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="utterance 1"):
        wer.corpus_wer(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="one reference and one prediction"):
        wer.wer_pair(["a", "b"], ["a"])


def test_registered_with_lm_eval():
    from lm_eval.api import registry

    items = [wer.wer_pair(references=[r], predictions=[h]) for r, h in
             [("The colour red.", "the color red"), ("a b c d", "a b x")]]
    expected = {
        "wer": 2 / 7,
        "wer_unnormalised": wer.corpus_wer(*zip(*items), normalise=False),
        "wer_substitutions": 1 / 7,
        "wer_deletions": 1 / 7,
        "wer_insertions": 0.0,
    }
    for name, value in expected.items():
        assert registry.get_metric(name) is wer.wer_pair
        assert registry.get_metric_aggregation(name)(items) == pytest.approx(value)
        assert registry.get_aggregation(name) is registry.get_metric_aggregation(name)
        assert registry.is_higher_better(name) is False


def test_yaml_without_aggregation_key_uses_ours():
    """`- metric: wer` with no `aggregation:` must work in a fresh process, where lm-eval looks
    the default aggregation up by inverting its registry (which lazy placeholders would miss)."""
    import subprocess
    import sys

    code = """
import datasets
from lm_eval.api.task import ConfigurableTask
from lm_eval_audio.wer import METRICS, agg_wer
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


def test_seed_wer_hand_worked():
    from lm_eval_audio.wer import seed_wer

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
