"""Matplotlib figures of a report, returned as PNG bytes for embedding in the HTML page."""

from __future__ import annotations

import io
import math

from lm_eval_audio.report.compare import Comparison, Report

Z95 = 1.959963984540054  # two-sided 95% normal quantile, for stderr error bars


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: the figures only go into files
    import matplotlib.pyplot as plt

    return plt


def scores_figure(report: Report) -> bytes | None:
    """One panel per table column: each configuration's score with a 95% interval (±1.96 stderr)."""
    cols = [c for c in report.columns if any(report.value(r, c) for r in report.rows)]
    if not cols:
        return None
    plt = _pyplot()
    ncols = min(2, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 0.5 + 0.45 * len(report.rows) * nrows + 1.2 * nrows),
                             squeeze=False)
    for ax, col in zip(axes.flat, cols):
        labels, values, errs = [], [], []
        for row in report.rows:
            mv = report.value(row, col)
            if mv is None:
                continue
            labels.append(row.label)
            values.append(mv.value)
            errs.append(Z95 * mv.stderr if mv.stderr is not None else 0.0)
        y = range(len(values))
        ax.barh(list(y), values, xerr=errs, color="#4c78a8", ecolor="#333", capsize=3)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        direction = {True: "higher is better", False: "lower is better"}.get(
            next((report.value(r, col).higher_is_better for r in report.rows if report.value(r, col)), None), "")
        ax.set_title(f"{col.label}: {col.metric}", fontsize=10)
        ax.set_xlabel(f"{col.metric} ({direction}); bars: 95% interval" if direction else col.metric, fontsize=8)
    for ax in list(axes.flat)[len(cols):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig)


def paired_figure(comparisons: list[Comparison], title: str) -> bytes | None:
    """Forest plot of paired differences (b - a) with their bootstrap confidence intervals."""
    comps = [c for c in comparisons if c.stats is not None]
    if not comps:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.45 * len(comps)))
    labels = [f"{c.model}\n{c.b.result.task} - {c.a.result.task} ({c.metric})" for c in comps]
    y = list(range(len(comps)))
    for yi, c in zip(y, comps):
        s = c.stats
        ax.plot([s.ci_low, s.ci_high], [yi, yi], color="#333", lw=1.5)
        ax.plot([s.diff], [yi], "o", color="#e45756" if s.diff < 0 else "#54a24b")
    ax.axvline(0.0, color="#888", lw=1, ls="--")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    conf = int(round(comps[0].stats.confidence * 100))
    ax.set_xlabel(f"paired difference with {conf}% bootstrap interval", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)
