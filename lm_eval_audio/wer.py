"""THE word error rate of the project: Whisper's English normaliser, corpus WER, S/D/I, raw WER.

Every WER this package reports (lm-eval metrics, benchmarks, the report) comes from here.

Definition
----------
Corpus-level WER = (S + D + I) / N, summed over all utterances, N = reference words (S + D + hits).
It is not the mean of per-utterance WERs: short utterances would weigh as much as long ones.
Edit counts come from jiwer's alignment (`jiwer.process_words`), after
`transformers`' port of Whisper's `EnglishTextNormalizer` with the British->American spelling
map that Whisper ships (without it "colour" and "color" count as an error). The map is
`whisper_english_spelling.json` next to this module, byte-identical to openai/whisper's
`whisper/normalizers/english.json` (MIT, Copyright (c) 2022 OpenAI) and to the `normalizer.json`
that `WhisperTokenizer` checkpoints carry; transformers itself ships no copy, so we vendor it
instead of downloading it. The unnormalised WER uses the raw strings with jiwer's default
transform (whitespace split), exactly what `jiwer.wer` computes.

Edge cases: an empty reference contributes 0 words and its hypothesis words as insertions; a
corpus with no reference words at all has WER 0 when nothing was hypothesised and +inf
otherwise (errors over zero words), with a warning.

lm-eval metrics (registered lazily through `registration.py`, usable by any generate_until task)
------------------------------------------------------------------------------------------------
`wer` (normalised), `wer_unnormalised`, `wer_substitutions`, `wer_deletions`, `wer_insertions`
(the three parts as fractions of N: they sum to `wer`), `wer_seed` (the seed study's own
transform and one-string alignment, see `seed_wer`). Per document each metric passes the
(reference, hypothesis) pair through; the aggregation of the same name computes the corpus figure
over all pairs. All are lower-is-better. In a task YAML:

    metric_list:
      - metric: wer
        aggregation: wer
        higher_is_better: false
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

SPELLING_FILE = Path(__file__).with_name("whisper_english_spelling.json")

# metric name -> which corpus figure its aggregation reports
METRICS: tuple[str, ...] = ("wer", "wer_unnormalised", "wer_substitutions", "wer_deletions", "wer_insertions",
                            "wer_seed")
# The seed study's notebook: its jiwer transform, applied to the whole corpus as one string.
SEED_SUBSTITUTIONS = {"mr": "mister", "mrs": "misses", "dr": "doctor", "st": "saint"}


@lru_cache(maxsize=1)
def english_spelling_map() -> dict[str, str]:
    """Whisper's British->American spelling map (1,739 entries)."""
    with open(SPELLING_FILE, encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=1)
def _normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(english_spelling_map())


def normalize(text: str) -> str:
    """Whisper's English normalisation (lower case, no punctuation, numbers and spellings unified)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize() needs a string, got {type(text).__name__}: {text!r}")
    return _normalizer()(text)


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of an alignment between reference and hypothesis words."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def reference_words(self) -> int:
        """N: the number of reference words."""
        return self.substitutions + self.deletions + self.hits

    @property
    def errors(self) -> int:
        """S + D + I."""
        return self.substitutions + self.deletions + self.insertions

    def rate(self, count: int) -> float:
        """`count` as a fraction of the reference words (see the module docstring for N = 0)."""
        n = self.reference_words
        if n:
            return count / n
        if count:
            logger.warning("WER over a corpus with no reference words: %d edits over 0 words is +inf", count)
            return math.inf
        return 0.0

    @property
    def wer(self) -> float:
        """Corpus WER = (S + D + I) / N."""
        return self.rate(self.errors)

    def __add__(self, other: "WordErrors") -> "WordErrors":
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.hits + other.hits,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Counts, N and the rates, for logs and JSON."""
        return {
            "wer": self.wer,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "hits": self.hits,
            "reference_words": self.reference_words,
            "substitution_rate": self.rate(self.substitutions),
            "deletion_rate": self.rate(self.deletions),
            "insertion_rate": self.rate(self.insertions),
        }


def _check_pairs(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    for i, (r, h) in enumerate(zip(references, hypotheses)):
        if not isinstance(r, str) or not isinstance(h, str):
            raise TypeError(
                f"utterance {i}: reference and hypothesis must be strings, got "
                f"{type(r).__name__} and {type(h).__name__}"
            )


def word_errors(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> WordErrors:
    """Corpus edit counts over paired references and hypotheses (normalised with Whisper's
    English normaliser unless `normalise=False`)."""
    import jiwer

    references, hypotheses = list(references), list(hypotheses)
    _check_pairs(references, hypotheses)
    if not references:
        return WordErrors()
    if normalise:
        references = [normalize(r) for r in references]
        hypotheses = [normalize(h) for h in hypotheses]
    out = jiwer.process_words(references, hypotheses)
    return WordErrors(out.substitutions, out.deletions, out.insertions, out.hits)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> float:
    """Corpus-level WER: total edits / total reference words."""
    return word_errors(references, hypotheses, normalise=normalise).wer


def wer_report(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int]:
    """Normalised counts and rates plus the unnormalised WER, in one dict."""
    report = word_errors(references, hypotheses).as_dict()
    report["wer_unnormalised"] = corpus_wer(references, hypotheses, normalise=False)
    return report


def seed_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """The seed study's WER, exactly as its notebook computed it.

    References and hypotheses are each lower-cased and joined with spaces into ONE string; both
    strings go through jiwer's `Compose([ToLowerCase(), RemoveMultipleSpaces(), Strip(),
    SubstituteWords(mr/mrs/dr/st), RemovePunctuation()])`, then `jiwer.wer` of the two. Unlike
    `corpus_wer`, words align across utterance boundaries and there is no Whisper normaliser
    (numbers, spellings and contractions are compared as written). Kept beside `wer` so that
    the seed's figure can be reproduced; `wer` is the sound one.
    """
    import jiwer

    references, hypotheses = list(references), list(hypotheses)
    _check_pairs(references, hypotheses)
    transform = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                               jiwer.SubstituteWords(SEED_SUBSTITUTIONS), jiwer.RemovePunctuation()])
    reference = transform(" ".join(r.lower() for r in references))
    hypothesis = transform(" ".join(h.lower() for h in hypotheses))
    if not reference.strip():
        return 0.0 if not hypothesis.strip() else math.inf
    return float(jiwer.wer(reference, hypothesis))


# --------------------------------------------------------------------------------------------
# lm-eval metric functions (per document) and aggregations (per corpus)


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
    """Corpus WER over the raw strings."""
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


def _load_aggregations_into_lm_eval() -> None:
    # A task YAML may list `- metric: wer` without `aggregation:`. lm-eval then names the
    # default aggregation by inverting its aggregation registry (api/task.py), which matches only
    # entries already loaded, not our lazy "module:attr" placeholders (registration.py). lm-eval
    # imports this module when it first looks a WER metric up, before that inversion: load ours now.
    from lm_eval.api.registry import aggregation_registry  # light: no torch; the hook registers ours

    for name in METRICS:
        if name in aggregation_registry:
            aggregation_registry.get(name)


_load_aggregations_into_lm_eval()
