"""One paired comparison of two table cells: items paired by identity, then the paired statistics.

`views` decides which cells to compare (speech vs text, backbone vs audio LLM, adapter vs base,
real vs control, Whisper vs audio LLM); this module does the comparing, the same way for all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from lm_eval_audio.report.items import pair_items
from lm_eval_audio.report.load import ResultsError, Run, TaskResult
from lm_eval_audio.report.model_config import ModelConfig
from lm_eval_audio.report.stats import PairedStats, paired_stats, paired_wer_bootstrap

logger = logging.getLogger(__name__)

# Corpus WER metrics (per-item value: a [reference, hypothesis] pair) -> normalise or not.
WER_METRICS = {"wer": True, "wer_unnormalised": False}


@dataclass(frozen=True)
class Cell:
    """One (row, task) of the table and the run it comes from."""

    config: ModelConfig
    result: TaskResult
    run: Run


@dataclass(frozen=True)
class PairSettings:
    """Statistics settings shared by every comparison of a report."""

    confidence: float
    n_resamples: int
    seed: int


@dataclass
class Comparison:
    """A paired comparison b - a on the items both runs scored."""

    kind: str  # one of views.KINDS
    model: str  # who is compared (label of the model, or "a vs b")
    a: Cell
    b: Cell
    metric_a: str
    filter_a: str
    metric_b: str
    filter_b: str
    stats: PairedStats | None = None
    item_key: str = ""  # the document field items were paired on ("doc_id" when it fell back)
    n_only_a: int = 0
    n_only_b: int = 0
    n_mismatched: int = 0
    pairing_note: str | None = None  # set when one task's items paired by doc_id and content hash
    problem: str | None = None  # why stats is None (two tasks without a shared item identity: not paired)
    mismatched_ids: list[str] = field(default_factory=list)
    doc_differs_ids: list[str] = field(default_factory=list)  # paired by identity, documents differ

    @property
    def higher_is_better(self) -> bool | None:
        mv = self.b.result.metrics.get((self.metric_b, self.filter_b))
        return None if mv is None else mv.higher_is_better

    @property
    def metric(self) -> str:
        """The compared metric's name ("acc vs exact_match" when the two tasks score differently)."""
        return self.metric_a if self.metric_a == self.metric_b else f"{self.metric_a} vs {self.metric_b}"

    @property
    def b_significantly_better(self) -> bool | None:
        """Whether b beats a beyond the confidence interval (None: no stats or no direction)."""
        s, hib = self.stats, self.higher_is_better
        if s is None or hib is None:
            return None
        return s.ci_low > 0 if hib else s.ci_high < 0

    @property
    def title(self) -> str:
        """'task_b - task_a' or, for one task, the task and both configurations."""
        return self.b.result.task if self.a.result.task == self.b.result.task else \
            f"{self.b.result.task} - {self.a.result.task}"


def _numbers(values: list, metric: str, task: str) -> np.ndarray:
    for v in values:
        if not isinstance(v, (int, float)):  # bool counts: some metrics log True/False
            kind = "missing" if v is None else type(v).__name__
            raise ResultsError(f"per-sample value of {metric!r} in {task} is {kind}, not a number; "
                               "paired statistics need a per-item score")
    return np.asarray(values, dtype=float)


def compare_cells(kind: str, model: str, a: Cell, b: Cell, ma: str, fa: str, mb: str, fb: str,
                  settings: PairSettings) -> Comparison:
    """Pair a's and b's items by identity and compute b - a; problems go to `problem`, not raised."""
    comp = Comparison(kind, model, a, b, ma, fa, mb, fb)
    try:
        ia, ib, pairing = pair_items(a.result, fa, b.result, fb)
    except ResultsError as e:
        comp.problem = str(e)
        return comp
    comp.item_key, comp.pairing_note = pairing.key, pairing.note
    comp.n_only_a, comp.n_only_b = len(pairing.only_a), len(pairing.only_b)
    comp.n_mismatched, comp.mismatched_ids = len(pairing.mismatched), pairing.mismatched
    comp.doc_differs_ids = pairing.doc_differs
    if pairing.no_identity:
        comp.problem = pairing.no_identity
        return comp
    if not pairing.common:
        comp.problem = (f"no item is scored in both runs ({len(ia.by_key)} vs {len(ib.by_key)} items by "
                        f"{pairing.key}, {comp.n_mismatched} with the same id but a different target or document)")
        return comp
    ids = pairing.common
    try:
        if ma == mb and ma in WER_METRICS:
            pa = [ia.value(k, ma) for k in ids]
            pb = [ib.value(k, mb) for k in ids]
            if not all(isinstance(p, list) and len(p) == 2 for p in pa + pb):
                raise ResultsError(f"per-sample {ma!r} values are not [reference, hypothesis] pairs")
            comp.stats = paired_wer_bootstrap(
                [str(p[0]) for p in pa], [str(p[1]) for p in pa], [str(p[1]) for p in pb],
                confidence=settings.confidence, n_resamples=settings.n_resamples, seed=settings.seed,
                normalise=WER_METRICS[ma])
        else:
            va = _numbers([ia.value(k, ma) for k in ids], ma, a.result.task)
            vb = _numbers([ib.value(k, mb) for k in ids], mb, b.result.task)
            comp.stats = paired_stats(va, vb, confidence=settings.confidence,
                                      n_resamples=settings.n_resamples, seed=settings.seed)
    except (ResultsError, ValueError) as e:
        comp.problem = str(e)
    return comp
