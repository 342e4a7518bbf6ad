"""Matplotlib figures of a report, returned as PNG bytes for embedding in the HTML page."""

from __future__ import annotations

import io
import math

from lm_eval_audio.report.compare import Report
from lm_eval_audio.report.ladder import Z95, ladders
from lm_eval_audio.report.model_config import comparison_names, distinct_names
from lm_eval_audio.report.pairs import Comparison

LADDER_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#e45756")


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
    bars = [sum(1 for r in report.rows if report.value(r, c)) for c in cols]
    height = sum(max(bars[i:i + ncols]) for i in range(0, len(cols), ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 0.35 * height + 1.3 * nrows), squeeze=False)
    names = distinct_names(report.rows)
    for ax, col in zip(axes.flat, cols):
        labels, values, errs = [], [], []
        for row in report.rows:
            mv = report.value(row, col)
            if mv is None:
                continue
            labels.append(_wrap(names[row]))
            values.append(mv.value)
            errs.append(Z95 * mv.stderr if mv.stderr is not None else 0.0)
        y = range(len(values))
        ax.barh(list(y), values, xerr=errs, color="#4c78a8", ecolor="#333", capsize=3, height=0.6)
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
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.6 * len(comps)))
    labels = [f"{_wrap(n)}\n{c.title} ({c.metric}, {c.filter_b})" for n, c in zip(comparison_names(comps), comps)]
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


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def ladder_figure(report: Report) -> bytes | None:
    """Backbone text -> audio-LLM text -> audio-LLM speech, one line per audio LLM and filter,
    each point with its 95% interval, each step labelled with its paired difference and CI."""
    lads = ladders(report.comparisons)
    if not lads:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    names = ["backbone text", "audio LLM text", "audio LLM speech"]
    offsets = [(i - (len(lads) - 1) / 2) * 0.06 for i in range(len(lads))]
    for i, (lad, dx) in enumerate(zip(lads, offsets)):
        colour = LADDER_COLOURS[i % len(LADDER_COLOURS)]
        xs = [names.index(r.label) + dx for r in lad.rungs]
        ys = [r.value for r in lad.rungs]
        err = [[r.value - r.low for r in lad.rungs], [r.high - r.value for r in lad.rungs]]
        # The steps' paired differences go in the legend: annotations on the lines would overlap.
        steps = "; ".join(f"{'text − backbone' if k == 0 else 'speech − text'} {st.stats.diff:+.3f} "
                          f"[{st.stats.ci_low:+.3f}, {st.stats.ci_high:+.3f}]" for k, st in enumerate(lad.steps))
        ax.errorbar(xs, ys, yerr=err, color=colour, marker="o", capsize=4, lw=2,
                    label=_wrap(f"{lad.model} · {lad.metric} ({lad.filter}): {steps}", 110))
    ax.set_xticks(range(3), [f"{n}\n({t})" for n, t in zip(names, _tasks(lads))], fontsize=8)
    ax.set_xlim(-0.4, 2.4)
    ax.set_ylabel("score (higher is better); bars: 95% interval", fontsize=8)
    ax.set_title("MMLU ladder: what the audio LLM loses, step by step", fontsize=10)
    ax.grid(axis="y", color="#eee")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=1, frameon=False,
              title="audio LLM · metric (filter): paired step differences [95% CI]", title_fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _tasks(lads) -> list[str]:
    out = []
    for k in range(3):
        names = sorted({lad.rungs[k].task for lad in lads if len(lad.rungs) > k})
        out.append(", ".join(names) or "-")
    return out


def loss_figure(trainings) -> bytes | None:
    """Training loss against step, one line per adapter (`seed_views.AdapterTraining`), the step
    each adapter was taken at marked on its line."""
    shown = [t for t in trainings if t.loss_log]
    if not shown:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, t in enumerate(shown):
        colour = LADDER_COLOURS[i % len(LADDER_COLOURS)]
        steps, losses = zip(*t.loss_log)
        ax.plot(steps, losses, color=colour, lw=1.5, marker=".",
                label=_wrap(f"{t.run.model_config.short(t.adapter)}: scored at step {t.step} of {t.run_steps}", 90))
        if t.step is not None:
            ax.axvline(t.step, color=colour, lw=1, ls="--")
    ax.set_xlabel("optimizer step (dashed: the step whose adapter was scored)", fontsize=8)
    ax.set_ylabel("training loss (trainer log)", fontsize=8)
    ax.set_title("Adapter training loss", fontsize=10)
    ax.grid(color="#eee")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _png(fig)
