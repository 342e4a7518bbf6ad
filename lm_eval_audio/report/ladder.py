"""The ladder: backbone text -> audio-LLM text -> audio-LLM speech, per audio LLM and filter.

Built from the report's comparisons: a backbone comparison (a: backbone on its task, b: the
audio LLM on the text task) continued by the degradation comparison that starts from the same
text cell under the same filter (a: that text run, b: the spoken run). Each step's score has a
95% interval of ± 1.96 lm-eval standard errors; each step's change is the paired comparison's
difference and bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from lm_eval_audio.report.pairs import Cell, Comparison
from lm_eval_audio.report.views import BACKBONE, DEGRADATION

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rung:
    """One point of a ladder."""

    label: str  # "backbone text", "audio LLM text", "audio LLM speech"
    task: str
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Ladder:
    """One audio LLM's ladder under one filter, and the paired comparisons between its rungs."""

    model: str
    metric: str
    filter: str
    rungs: tuple[Rung, ...]
    steps: tuple[Comparison, ...]


def _rung(label: str, cell: Cell, metric: str, filt: str) -> Rung | None:
    mv = cell.result.metrics.get((metric, filt))
    if mv is None:
        return None
    half = Z95 * mv.stderr if mv.stderr is not None else 0.0
    return Rung(label, cell.result.task, mv.value, mv.value - half, mv.value + half)


def ladders(comparisons: list[Comparison]) -> list[Ladder]:
    """Every ladder the comparisons allow (two rungs when the audio LLM has no spoken run)."""
    out = []
    degr = [c for c in comparisons if c.kind == DEGRADATION and c.stats is not None]
    for bc in (c for c in comparisons if c.kind == BACKBONE and c.stats is not None):
        rungs = [_rung("backbone text", bc.a, bc.metric_a, bc.filter_a),
                 _rung("audio LLM text", bc.b, bc.metric_b, bc.filter_b)]
        steps = [bc]
        dc = next((d for d in degr if d.a is bc.b and d.filter_a == bc.filter_b and d.metric_a == bc.metric_b), None)
        if dc is not None:
            rungs.append(_rung("audio LLM speech", dc.b, dc.metric_b, dc.filter_b))
            steps.append(dc)
        if all(r is not None for r in rungs):
            out.append(Ladder(bc.b.config.model_name, bc.metric_b, bc.filter_b, tuple(rungs), tuple(steps)))
    return out
