"""Write a report as Markdown, CSV and a self-contained HTML page (plots embedded as PNG).

The CSV files carry every number at full precision, exactly as lm-eval wrote it; Markdown and
HTML round for reading. All three are built from the same `Report`, so they cannot disagree.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
from dataclasses import dataclass
from pathlib import Path

from lm_eval_audio.report.compare import Column, Comparison, Report
from lm_eval_audio.report.load import MetricValue
from lm_eval_audio.report.model_config import ModelConfig
from lm_eval_audio.report.reference import PublishedFigure

logger = logging.getLogger(__name__)

TABLE_CSV = "report.csv"
PAIRED_CSV = "paired.csv"
MARKDOWN = "report.md"
HTML = "report.html"


@dataclass(frozen=True)
class Outputs:
    """Paths of the files one report wrote."""

    markdown: Path
    table_csv: Path
    paired_csv: Path
    html: Path


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for reading: fixed decimals, '-' for missing."""
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def cell_text(report: Report, row: ModelConfig, col: Column) -> str:
    """The table cell: value ± stderr (n), and failure rates of the same filter beside it."""
    mv = report.value(row, col)
    if mv is None:
        return ""
    cell = report.cells[(row, col.task)]
    s = fmt(mv.value)
    if mv.stderr is not None:
        s += f" ± {fmt(mv.stderr)}"
    s += f" (n={cell.result.n})"
    for f in cell.result.failure_metrics(col.filter):
        s += f"; {f.metric} {fmt(f.value)}"
    return s


def reference_cell(ref: PublishedFigure, col: Column) -> str:
    """A published figure in a column that measures the same benchmark split and metric."""
    if col.task in ref.tasks and col.metric == ref.metric:
        return f"{fmt(ref.value)} (published)"
    return ""


def _reference_rows(report: Report) -> list[tuple[PublishedFigure, list[str]]]:
    out = []
    for ref in report.references:
        cells = [reference_cell(ref, c) for c in report.columns]
        if any(cells):
            out.append((ref, cells))
    return out


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and body of the main comparison table (measured rows, then published ones)."""
    header = ["model", "checkpoint", "adapter", "mode"] + [f"{c.label}: {c.metric}" for c in report.columns]
    body = []
    for row in report.rows:
        extra = "".join(f", {k}={v}" for k, v in row.other_args)
        body.append([row.model + extra, row.short(row.checkpoint), row.short(row.adapter), row.mode or "-"]
                    + [cell_text(report, row, c) for c in report.columns])
    for ref, cells in _reference_rows(report):
        body.append([f"published: {ref.model}", "-", "-", "-"] + cells)
    return header, body


def _direction(c: Comparison) -> str:
    return {True: "higher", False: "lower"}.get(c.higher_is_better, "?")


def paired_rows(comparisons: list[Comparison]) -> tuple[list[str], list[list[str]]]:
    """Header and body of a paired-comparison table."""
    header = ["model", "a", "b", "metric (better)", "n paired", "a", "b", "b - a", "95% CI",
              "a right, b wrong", "a wrong, b right", "McNemar p"]
    body = []
    for c in comparisons:
        s = c.stats
        a = f"{c.a.result.task} [{c.a.config.mode or '-'}]" + (f" ({c.filter_a})" if c.filter_a != "none" else "")
        b = f"{c.b.result.task} [{c.b.config.mode or '-'}]" + (f" ({c.filter_b})" if c.filter_b != "none" else "")
        if s is None:
            body.append([c.model, a, b, c.metric, "-", "-", "-", "-", "-", "-", "-", f"not computed: {c.problem}"])
            continue
        conf = f"{int(round(100 * s.confidence))}%"
        body.append([
            c.model, a, b, f"{c.metric} ({_direction(c)})", str(s.n), fmt(s.mean_a), fmt(s.mean_b),
            f"{s.diff:+.4f} ± {fmt(s.diff_stderr)}", f"[{s.ci_low:+.4f}, {s.ci_high:+.4f}]"
            + ("" if conf == "95%" else f" ({conf})"),
            "-" if s.a_only is None else f"{s.a_only} ({_pct(s.a_only_share)})",
            "-" if s.b_only is None else f"{s.b_only} ({_pct(s.b_only_share)})",
            "-" if s.mcnemar_p is None else f"{s.mcnemar_p:.4g}",
        ])
    return header, body


def reference_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Every published figure with its source."""
    header = ["model", "benchmark", "metric", "published", "source", "note"]
    return header, [[r.model, r.benchmark, r.metric, r.published_as, r.source, r.note] for r in report.references]


def _md_table(header: list[str], body: list[list[str]]) -> str:
    from pytablewriter import MarkdownTableWriter

    writer = MarkdownTableWriter(headers=header, value_matrix=body, margin=1)
    # Cells are preformatted text: keep them as they are (no number re-formatting).
    writer.type_hints = [None] * len(header)
    return writer.dumps()


def _sections(report: Report):
    deg = [c for c in report.comparisons if c.kind == "speech - text"]
    ada = [c for c in report.comparisons if c.kind == "adapter - base"]
    return deg, ada


def to_markdown(report: Report) -> str:
    """The whole report as Markdown."""
    deg, ada = _sections(report)
    parts = ["# lm-eval comparison report", "",
             "Scores as lm-eval wrote them: value ± standard error (n = items scored). "
             "Rows marked *published* are figures from the literature, not measured here.", "",
             "## Results", "", _md_table(*table_rows(report))]
    parts += ["## Degradation: speech - text (same model, same items)", ""]
    parts += [_md_table(*paired_rows(deg))] if deg else ["No model has paired text and spoken runs.", ""]
    parts += ["## Adapters: adapter - base (same task, same items)", ""]
    parts += [_md_table(*paired_rows(ada))] if ada else ["No configuration has an adapter run and a base run.", ""]
    if report.references:
        parts += ["## Published figures", "", _md_table(*reference_table(report))]
    parts += ["## Notes", ""]
    parts += [f"- {n}" for n in report.notes] or ["- none: every input matched"]
    parts += ["", "## Inputs", ""] + [f"- `{r.path}`" for r in report.runs] + [""]
    return "\n".join(parts)


def write_table_csv(report: Report, path: Path) -> None:
    """Long-format CSV: one line per configuration, task, metric and filter, at full precision."""
    fields = ["kind", "row", "model", "checkpoint", "adapter", "mode", "other_args", "task", "metric",
              "filter", "value", "stderr", "n", "higher_is_better", "source"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for (row, task), cell in sorted(report.cells.items(), key=lambda kv: (kv[0][0].label, kv[0][1])):
            for (metric, filt), mv in cell.result.metrics.items():
                w.writerow(dict(
                    kind="measured", row=row.label, model=row.model, checkpoint=row.checkpoint,
                    adapter=row.adapter or "", mode=row.mode or "",
                    other_args=",".join(f"{k}={v}" for k, v in row.other_args), task=task, metric=metric,
                    filter=filt, value=repr(mv.value), stderr="" if mv.stderr is None else repr(mv.stderr),
                    n=cell.result.n, higher_is_better=mv.higher_is_better, source=str(cell.run.path)))
        for ref in report.references:
            w.writerow(dict(kind="published", row=ref.model, model=ref.model, checkpoint="", adapter="",
                            mode="", other_args="", task=" ".join(ref.tasks) or ref.benchmark,
                            metric=ref.metric, filter="", value=repr(ref.value), stderr="", n="",
                            higher_is_better=ref.metric != "wer", source=ref.source))


def write_paired_csv(report: Report, path: Path) -> None:
    """Every paired comparison at full precision, including those that could not be computed."""
    fields = ["kind", "model", "config_a", "task_a", "metric_a", "filter_a", "config_b", "task_b", "metric_b",
              "filter_b", "n", "mean_a", "mean_b", "diff", "diff_stderr", "ci_low", "ci_high", "confidence",
              "a_only", "b_only", "both", "neither", "mcnemar_p", "n_only_a", "n_only_b", "n_mismatched",
              "problem"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for c in report.comparisons:
            s = c.stats
            row = dict(kind=c.kind, model=c.model, config_a=c.a.config.label, task_a=c.a.result.task,
                       metric_a=c.metric_a, filter_a=c.filter_a, config_b=c.b.config.label,
                       task_b=c.b.result.task, metric_b=c.metric_b, filter_b=c.filter_b,
                       n_only_a=c.n_only_a, n_only_b=c.n_only_b, n_mismatched=c.n_mismatched,
                       problem=c.problem or "")
            if s is not None:
                row.update({k: ("" if getattr(s, k) is None else repr(getattr(s, k))) for k in (
                    "n", "mean_a", "mean_b", "diff", "diff_stderr", "ci_low", "ci_high", "confidence",
                    "a_only", "b_only", "both", "neither", "mcnemar_p")})
            w.writerow(row)


def _html_table(header: list[str], body: list[list[str]], css_class: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for r in body:
        cls = ' class="published"' if r and r[0].startswith("published:") else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def to_html(report: Report) -> str:
    """The report as one HTML page with its plots embedded (no external files or scripts)."""
    import jinja2

    from lm_eval_audio.report.plots import paired_figure, scores_figure

    deg, ada = _sections(report)

    def img(png: bytes | None, alt: str) -> str:
        if png is None:
            return ""
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    env = jinja2.Environment(loader=jinja2.PackageLoader("lm_eval_audio.report", "."),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    template = env.get_template("template.html.j2")
    return template.render(
        results_table=_html_table(*table_rows(report), "results"),
        scores_plot=img(scores_figure(report), "scores by configuration"),
        degradation_table=_html_table(*paired_rows(deg), "paired") if deg else "",
        degradation_plot=img(paired_figure(deg, "speech - text, paired by item"), "degradation"),
        adapter_table=_html_table(*paired_rows(ada), "paired") if ada else "",
        adapter_plot=img(paired_figure(ada, "adapter - base, paired by item"), "adapters"),
        reference_table=_html_table(*reference_table(report), "refs") if report.references else "",
        notes=report.notes, inputs=[str(r.path) for r in report.runs],
    )


def write_report(report: Report, output_dir: str | Path) -> Outputs:
    """Write report.md, report.csv, paired.csv and report.html into `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs = Outputs(out / MARKDOWN, out / TABLE_CSV, out / PAIRED_CSV, out / HTML)
    outputs.markdown.write_text(to_markdown(report), encoding="utf-8")
    write_table_csv(report, outputs.table_csv)
    write_paired_csv(report, outputs.paired_csv)
    outputs.html.write_text(to_html(report), encoding="utf-8")
    logger.info("wrote %s, %s, %s and %s", *(p.name for p in (outputs.markdown, outputs.table_csv,
                                                              outputs.paired_csv, outputs.html)))
    return outputs
