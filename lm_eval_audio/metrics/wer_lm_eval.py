"""WER as lm-eval metrics: the per-document metric and the corpus aggregations of `wer.py`.

The metric (`wer_pair`) passes each document's (reference, hypothesis) pair through; the
aggregation of the same name computes the corpus figure over all pairs (`wer.py`, the one WER).
`registration.py` registers them with lm-eval when one of our tasks loads. Each aggregation
carries a `bootstrap_stderr(items, iters)` attribute: lm-eval bootstraps only a fixed list of its
own aggregations, and the start-up hook makes its `stderr_for_metric` use this attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from lm_eval_audio.metrics.wer import METRICS, _check_pairs, bootstrap_stderr, seed_wer, word_errors

__all__ = ["METRICS", "wer_pair", "agg_wer", "agg_wer_unnormalised", "agg_wer_seed", "agg_substitution_rate",
           "agg_deletion_rate", "agg_insertion_rate"]



def wer_pair(references: Sequence[str], predictions: Sequence[str]) -> tuple[str, str]:
    """Per-document lm-eval metric: pass the (reference, hypothesis) pair on to the aggregation.

    lm-eval calls it as `fn(references=[gold], predictions=[result])` for generate_until tasks.
    """
    if len(references) != 1 or len(predictions) != 1:
        raise ValueError(
            f"WER metrics take one reference and one prediction per document, got "
            f"{len(references)} and {len(predictions)} (multiple targets are not supported)"
        )
    reference, prediction = references[0], predictions[0]
    if isinstance(prediction, (list, tuple)):  # a filter that keeps all generations: score the first
        prediction = prediction[0]
    _check_pairs([reference], [prediction])
    return reference, prediction


def _split(items: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    items = list(items)
    return [r for r, _ in items], [h for _, h in items]


def agg_wer(items: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs, normalised."""
    return word_errors(*_split(items)).wer


def agg_wer_unnormalised(items: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over the strings lower-cased only (punctuation and spelling count)."""
    return word_errors(*_split(items), normalise=False).wer


def agg_wer_seed(items: Iterable[tuple[str, str]]) -> float:
    """The seed study's WER over (reference, hypothesis) pairs (see `seed_wer`)."""
    return seed_wer(*_split(items))


def agg_substitution_rate(items: Iterable[tuple[str, str]]) -> float:
    """Substitutions / reference words, normalised."""
    e = word_errors(*_split(items))
    return e.rate(e.substitutions)


def agg_deletion_rate(items: Iterable[tuple[str, str]]) -> float:
    """Deletions / reference words, normalised."""
    e = word_errors(*_split(items))
    return e.rate(e.deletions)


def agg_insertion_rate(items: Iterable[tuple[str, str]]) -> float:
    """Insertions / reference words, normalised."""
    e = word_errors(*_split(items))
    return e.rate(e.insertions)


def _stderr_by_bootstrap(part: str, normalise: bool) -> Callable[[Sequence[tuple[str, str]], int], float]:
    def stderr(items: Sequence[tuple[str, str]], iters: int) -> float:
        return bootstrap_stderr(*_split(items), iters, part=part, normalise=normalise)

    return stderr


# lm-eval's stderr_for_metric knows only its own aggregations; the start-up hook (_hook.py)
# makes it use this attribute, called as fn(items, bootstrap_iters), when an aggregation has one.
agg_wer.bootstrap_stderr = _stderr_by_bootstrap("wer", True)
agg_wer_unnormalised.bootstrap_stderr = _stderr_by_bootstrap("wer", False)
agg_substitution_rate.bootstrap_stderr = _stderr_by_bootstrap("substitutions", True)
agg_deletion_rate.bootstrap_stderr = _stderr_by_bootstrap("deletions", True)
agg_insertion_rate.bootstrap_stderr = _stderr_by_bootstrap("insertions", True)

