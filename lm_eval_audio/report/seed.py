"""The seed study's MMLU numbers: Total, Answered, answered share, and backbone agreement.

The seed reported, per model: accuracy over all items ("Total": an unanswered item counts as
wrong), accuracy over the answered items ("Answered") and the answered share; and the
agreement between the backbone and Qwen2-Audio over the items *the backbone* answered (an item
Qwen2-Audio left unanswered counts as a disagreement). Our generation tasks report the first
three as `exact_match`, `exact_match_answered` and `extraction_failure` (1 - answered share)
under each filter (`strict`: the response is exactly one letter, the seed's rule; `choice`: our
extraction), straight from the results files. Agreement needs both runs' per-item answers,
paired by item identity like every paired view; beside the seed's denominator the report gives
the agreement over the items both answered, labelled as such.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lm_eval_audio.report.items import pair_items
from lm_eval_audio.report.load import ResultsError
from lm_eval_audio.report.pairs import Cell, Comparison

logger = logging.getLogger(__name__)

TOTAL, ANSWERED, FAILURE = "exact_match", "exact_match_answered", "extraction_failure"


@dataclass(frozen=True)
class SeedNumbers:
    """One run's seed numbers on one task under one filter (values as the results file holds them)."""

    cell: Cell
    filter: str
    total: float | None
    answered: float | None
    answered_share: float | None  # 1 - extraction_failure
    n: int | None


def seed_numbers(cells: list[Cell]) -> list[SeedNumbers]:
    """Every (cell, filter) that reports the seed's `exact_match_answered`."""
    out = []
    for cell in cells:
        m = cell.result.metrics
        for filt in sorted({f for (name, f) in m if name == ANSWERED}):
            fail = m.get((FAILURE, filt))
            total = m.get((TOTAL, filt))
            out.append(SeedNumbers(cell, filt, None if total is None else total.value, m[(ANSWERED, filt)].value,
                                   None if fail is None else 1.0 - fail.value, cell.result.n))
    return out


@dataclass(frozen=True)
class Agreement:
    """Backbone vs audio LLM: how often they gave the same letter, over two denominators."""

    comparison: Comparison  # the backbone comparison this belongs to (a: backbone, b: audio LLM)
    n_paired: int
    n_backbone_answered: int
    n_both_answered: int
    n_same: int  # same letter (so both answered)
    n_both_correct: int
    problem: str | None = None

    @property
    def seed_rate(self) -> float | None:
        """The seed's agreement: same answer / items the backbone answered (None when it answered none)."""
        return self.n_same / self.n_backbone_answered if self.n_backbone_answered else None

    @property
    def rate(self) -> float | None:
        """Same answer / both answered (None when no item was answered by both)."""
        return self.n_same / self.n_both_answered if self.n_both_answered else None


def agreement_counts(items) -> tuple[int, int, int, int]:
    """(backbone answered, both answered, same letter, both correct) over paired items.

    `items`: per item (backbone letter or None when unanswered, audio-LLM letter or None,
    backbone correct, audio LLM correct).
    """
    backbone = both = same = both_correct = 0
    for a, b, a_correct, b_correct in items:
        if a is None:
            continue
        backbone += 1
        if b is None:
            continue  # the seed's denominator keeps it: a disagreement
        both += 1
        same += a.strip().upper() == b.strip().upper()
        both_correct += bool(a_correct) and bool(b_correct)
    return backbone, both, same, both_correct


def agreement(comp: Comparison) -> Agreement:
    """The agreement of a backbone comparison's two runs under its filter, by item identity.

    An item counts as answered when its `extraction_failure` is 0; the answers compared are
    the filtered responses (the letters), case and surrounding space ignored.
    """
    try:
        ia, ib, pairing = pair_items(comp.a.result, comp.filter_a, comp.b.result, comp.filter_b)
    except ResultsError as e:
        return Agreement(comp, 0, 0, 0, 0, 0, problem=str(e))
    if pairing.no_identity:
        return Agreement(comp, 0, 0, 0, 0, 0, problem=pairing.no_identity)
    items = []
    for k in pairing.common:
        ra, rb = ia.by_key[k], ib.by_key[k]
        fa, fb = ra.values.get(FAILURE), rb.values.get(FAILURE)
        if fa is None or fb is None:
            return Agreement(comp, len(pairing.common), 0, 0, 0, 0,
                             problem=f"per-item {FAILURE} missing under filter {comp.filter_a}/{comp.filter_b}")
        items.append((None if fa else ra.filtered, None if fb else rb.filtered,
                      ra.values.get(TOTAL), rb.values.get(TOTAL)))
    return Agreement(comp, len(pairing.common), *agreement_counts(items))
