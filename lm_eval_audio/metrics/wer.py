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
instead of downloading it.

The unnormalised WER (`wer_unnormalised`) is case-insensitive and nothing more: both strings are
lower-cased (`str.lower`) and split on whitespace, so punctuation ("world," vs "world"), spelling
("colour" vs "color"), numbers ("25" vs "twenty five") and contractions still count as errors.
It measures how far a transcript is from the reference's written form. (Compared
case-sensitively it read about 1.0 on LibriSpeech, whose references are upper case: every
word counted as wrong.) `normaliser_info()` names both transforms and their versions for the
results file.

Standard errors and paired comparisons
--------------------------------------
`wer_stderr` (and the stderr of the three parts) is a bootstrap over utterances: each replicate
draws n utterances with replacement and recomputes the corpus figure from their summed edit
counts. lm-eval asks for it with its `bootstrap_iters`; the draws are the project's one
bootstrap (`metrics.bootstrap`: scipy's, seeded), so a rerun gives the same figure (see
`bootstrap_stderr`). `paired_bootstrap_wer` compares two systems on the same utterances.

Edge cases: an empty reference contributes 0 words and its hypothesis words as insertions; a
corpus with no reference words at all has WER 0 when nothing was hypothesised and +inf
otherwise (errors over zero words), with a warning.

lm-eval metrics (`wer_lm_eval.py`; `registration.py` registers them as our tasks or models load)
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

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from lm_eval_audio.metrics import bootstrap

logger = logging.getLogger(__name__)

SPELLING_FILE = Path(__file__).with_name("whisper_english_spelling.json")

BOOTSTRAP_SEED = bootstrap.SEED  # the project's one bootstrap seed (`metrics.bootstrap`)

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


def _transform(texts: list[str], normalise: bool) -> list[str]:
    # Whisper's normaliser, or (unnormalised) lower case only: see the module docstring.
    return [normalize(t) for t in texts] if normalise else [t.lower() for t in texts]


def word_errors(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> WordErrors:
    """Corpus edit counts over paired references and hypotheses (normalised with Whisper's
    English normaliser; with `normalise=False` lower-cased only)."""
    import jiwer

    references, hypotheses = list(references), list(hypotheses)
    _check_pairs(references, hypotheses)
    if not references:
        return WordErrors()
    out = jiwer.process_words(_transform(references, normalise), _transform(hypotheses, normalise))
    return WordErrors(out.substitutions, out.deletions, out.insertions, out.hits)


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str], *,
                     normalise: bool = True) -> list[WordErrors]:
    """Edit counts of each utterance (the same alignment `word_errors` sums over the corpus)."""
    import jiwer

    references, hypotheses = list(references), list(hypotheses)
    _check_pairs(references, hypotheses)
    if not references:
        return []
    out = jiwer.process_words(_transform(references, normalise), _transform(hypotheses, normalise))
    per = []
    for chunks in out.alignments:
        counts = {"substitute": 0, "delete": 0, "insert": 0, "equal": 0}
        for c in chunks:
            width = max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
            counts[c.type] += width
        per.append(WordErrors(counts["substitute"], counts["delete"], counts["insert"], counts["equal"]))
    return per


# which edits each corpus figure counts: columns of the (S, D, I, N) count matrix
_PARTS: dict[str, tuple[int, ...]] = {"wer": (0, 1, 2), "substitutions": (0,), "deletions": (1,), "insertions": (2,)}


def _count_matrix(errors: Sequence[WordErrors]) -> np.ndarray:
    return np.array([[e.substitutions, e.deletions, e.insertions, e.reference_words] for e in errors],
                    dtype=np.int64).reshape(-1, 4)


def _rates(numerator: np.ndarray, words: np.ndarray) -> np.ndarray:
    # As WordErrors.rate: edits over zero reference words are +inf, no edits over none are 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / words
    return np.where(words > 0, out, np.where(numerator > 0, np.inf, 0.0))


@lru_cache(maxsize=4)
def _utterance_counts(pairs: tuple[tuple[str, str], ...], normalise: bool) -> np.ndarray:
    # lm-eval asks for the stderr of wer, substitutions, deletions and insertions one by one over
    # the same pairs: align them once.
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return _count_matrix(utterance_errors(refs, hyps, normalise=normalise))


def _part_rate(columns: tuple[int, ...]) -> Callable[..., np.ndarray]:
    def statistic(s, d, i, n, axis=-1):
        edits = sum((s, d, i)[k] for k in columns)
        return _rates(edits.sum(axis=axis), n.sum(axis=axis))

    return statistic


def bootstrap_stderr(references: Sequence[str], hypotheses: Sequence[str], iters: int, *, part: str = "wer",
                     normalise: bool = True, seed: int = bootstrap.SEED) -> float:
    """Standard error of a corpus figure (`part`: wer, substitutions, deletions, insertions) by
    the project's bootstrap over utterances (`metrics.bootstrap`: each resample draws n
    utterances with replacement and recomputes the corpus figure from their summed edit counts):
    the sample standard deviation (n - 1, as lm-eval's `sample_stddev`) of `iters` replicates."""
    if part not in _PARTS:
        raise ValueError(f"unknown WER part {part!r}; choose from {', '.join(_PARTS)}")
    if iters < 2:
        raise ValueError(f"bootstrap needs at least 2 iterations, got {iters}")
    references, hypotheses = list(references), list(hypotheses)
    _check_pairs(references, hypotheses)
    if not references:
        raise ValueError("WER standard error over no utterances")
    counts = _utterance_counts(tuple(zip(references, hypotheses)), bool(normalise))
    if counts[:, 3].sum() == 0 and counts[:, list(_PARTS[part])].sum() > 0:
        return math.inf  # the corpus figure itself is +inf (edits over no reference words)
    result = bootstrap.bootstrap(tuple(counts.T), _part_rate(_PARTS[part]), paired=True, n_resamples=int(iters),
                                 seed=int(seed))
    return result.stderr


@dataclass(frozen=True)
class PairedWER:
    """Two systems' corpus WER on the same utterances, their difference and its bootstrap CI."""

    wer_a: float
    wer_b: float
    difference: float  # wer_b - wer_a: negative when b makes fewer errors than a
    ci_low: float
    ci_high: float
    p_value: float  # two-sided: twice the smaller share of replicates on either side of 0
    utterances: int
    iters: int
    seed: int
    confidence: float
    difference_stderr: float = float("nan")  # standard deviation of the replicates' differences

    @property
    def significant(self) -> bool:
        """Whether the CI excludes 0 (b differs from a at the chosen confidence)."""
        return self.ci_low > 0 or self.ci_high < 0

    def as_dict(self) -> dict:
        """All fields, plus `significant`, for JSON and tables."""
        return {**asdict(self), "significant": self.significant}


def _wer_difference(sa, da, ia, n, sb, db, ib, axis=-1):
    words = n.sum(axis=axis)
    return _rates((sb + db + ib).sum(axis=axis), words) - _rates((sa + da + ia).sum(axis=axis), words)


def paired_bootstrap_wer(references: Sequence[str], hypotheses_a: Sequence[str], hypotheses_b: Sequence[str], *,
                         iters: int = bootstrap.DEFAULT_RESAMPLES, seed: int = bootstrap.SEED,
                         confidence: float = 0.95, normalise: bool = True) -> PairedWER:
    """Paired bootstrap of corpus WER: systems a and b on the same utterances (Whisper vs an
    audio LLM, adapter vs base). Each resample draws the same utterances for both systems
    (`metrics.bootstrap` with `paired=True`) and takes wer_b - wer_a over the draw; the CI is
    the percentile interval of those differences.
    """
    references = list(references)
    if len(hypotheses_a) != len(references) or len(hypotheses_b) != len(references):
        raise ValueError(f"paired WER needs one hypothesis of each system per reference: {len(references)} "
                         f"references, {len(hypotheses_a)} and {len(hypotheses_b)} hypotheses")
    if not references:
        raise ValueError("paired WER over no utterances")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a = _count_matrix(utterance_errors(references, hypotheses_a, normalise=normalise))
    b = _count_matrix(utterance_errors(references, hypotheses_b, normalise=normalise))
    joint = np.concatenate([a, b[:, :3]], axis=1)  # S, D, I, N of a; S, D, I of b (same N)
    try:
        result = bootstrap.bootstrap(tuple(joint.T), _wer_difference, paired=True, n_resamples=iters, seed=seed,
                                     confidence=confidence)
    except ValueError as e:
        if "not finite" in str(e):
            raise ValueError("every resample has zero reference words: WER is undefined") from e
        raise
    diffs = result.distribution
    wer_a = float(_rates(a[:, :3].sum(), a[:, 3].sum()))
    wer_b = float(_rates(b[:, :3].sum(), a[:, 3].sum()))
    p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return PairedWER(wer_a, wer_b, wer_b - wer_a, result.low, result.high, p, len(references), iters, seed,
                     confidence, result.stderr)


@lru_cache(maxsize=1)
def normaliser_info() -> dict[str, str | int]:
    """What turns transcripts into words before counting, with versions, for the results file."""
    from importlib.metadata import version

    return {
        "wer_normaliser": "whisper_english: transformers.models.whisper.english_normalizer.EnglishTextNormalizer"
                          " + Whisper's spelling map",
        "wer_normaliser_version": f"transformers {version('transformers')}, jiwer {version('jiwer')}",
        "wer_spelling_map_sha256": hashlib.sha256(SPELLING_FILE.read_bytes()).hexdigest(),
        "wer_unnormalised_transform": "lower case only (punctuation, spelling and numbers kept)",
        **bootstrap.describe(),
    }


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
