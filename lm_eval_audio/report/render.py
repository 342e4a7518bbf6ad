"""Write a report as Markdown, CSV and a self-contained HTML page (plots embedded as PNG).

The CSV files carry every number at full precision, exactly as lm-eval wrote it; Markdown and
HTML round for reading. All three are built from the same `Report` through the same table
functions (header + body of strings), so they cannot disagree. The page fits a 1400 px window:
tables take the page's width and wrap their cells instead of scrolling.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from lm_eval_audio.report import views
from lm_eval_audio.report.compare import Column, Report
from lm_eval_audio.report.model_config import ModelConfig, comparison_names, distinct_names
from lm_eval_audio.report.pairs import Comparison
from lm_eval_audio.report.reference import PublishedFigure
from lm_eval_audio.report.summary import WIDTH, markdown_tables, terminal_table

logger = logging.getLogger(__name__)

TABLE_CSV = "report.csv"
PAIRED_CSV = "paired.csv"
MARKDOWN = "report.md"
HTML = "report.html"

Table = tuple[list[str], list[list[str]]]

# Section titles and what each says, shared by Markdown and HTML.
SECTIONS = {
    "leaderboard": ("Leaderboard", "One row per model: its text and speech runs together. Rows differ when "
                    "anything in the protocol differs (chat template, system instruction, few-shot, TTS, audio "
                    "control). Hover a cell for the task, filter and run it comes from."),
    "backbone": ("The seed's first finding: audio LLM − backbone, both on text",
                 "The audio LLM against its own text backbone on the same MMLU items (paired by item identity), "
                 "under each filter."),
    "ladder": ("The ladder: backbone text → audio-LLM text → audio-LLM speech",
               "Each point with its 95% interval (± 1.96 standard errors); each step's paired difference and 95% "
               "paired bootstrap interval in the labels."),
    "seed": ("The seed's MMLU numbers",
             "Total: accuracy over all items (unanswered counts as wrong). Answered: accuracy over the answered "
             "items. Answered share: 1 − extraction failure. Filter strict: the response is exactly "
             "one letter (the seed's rule for speech); choice: our extraction (the sound variant of the seed's "
             "gpt-4o-mini mapping for text)."),
    "agreement": ("Backbone and audio LLM agreement",
                  "How often the audio LLM gave the backbone's letter. Seed agreement: over the items the "
                  "backbone answered, an item the audio LLM left unanswered counting as a disagreement (the "
                  "seed's denominator). Beside it, over the items both answered."),
    "labels": ("Timbre labels: the majority-class baseline",
               "The label distribution of the items each timbre run scored (from its per-sample log), the "
               "accuracy of always answering the most frequent label, and the model's accuracy beside it."),
    "training": ("Adapter training",
                 "Each scored adapter: the training step it was taken at (the seed scored checkpoint-37, "
                 "less than one epoch), its run's length, and the training loss from the trainer's log."),
    views.DEGRADATION: ("Degradation: speech − text (same model, same items)", ""),
    views.ADAPTER: ("Adapters: after − before (same items)",
                    "The seed scored its adapter on the very items it was fine-tuned on: those rows are "
                    "labelled 'scored on training items'; the held-out validation rows are the sound figure."),
    views.CONTROL: ("Controls: real audio − control (did the audio reach the model?)",
                    "A control run replaces each clip by silence or by another document's clip. A model that "
                    "listens scores better on the real audio; rows marked NOT are tasks where it does not, "
                    "beyond the confidence interval."),
    views.ASR: ("ASR: audio LLM − Whisper (same utterances)",
                "Difference of corpus WERs (lower is better) with a 95% paired bootstrap interval over "
                "utterances."),
    "checks": ("Run protocol and checks",
               "What each configuration's runs were made with, and the batch self-check (verify_batch: the "
               "largest difference between a batched score and the same request scored alone)."),
    "results": ("All results", "Every task of every configuration as lm-eval wrote it: value ± standard error."),
}
EMPTY = {
    views.BACKBONE: "No backbone run (a task with metadata role: backbone) pairs with an audio LLM run.",
    views.DEGRADATION: "No model has paired text and spoken runs.",
    views.ADAPTER: "No configuration has an adapter run and a base run.",
    views.CONTROL: "No control run (audio_control=silence|shuffle).",
    views.ASR: "No Whisper run and audio LLM run on the same utterances.",
}
SPLIT_LABELS = {"train": "training items (seed)", "validation": "held-out validation"}


@dataclass(frozen=True)
class Outputs:
    """Paths of the files one report wrote."""

    markdown: Path
    table_csv: Path
    paired_csv: Path
    html: Path


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for reading: fixed decimals, '-' for missing, 'n/a' for NaN (e.g. accuracy over
    answered items when none was answered)."""
    if x is None:
        return "-"
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _value(report: Report, row: ModelConfig, col: Column) -> str:
    """value ± stderr, then failure rates of the same filter ('' when the row did not run it)."""
    mv = report.value(row, col)
    if mv is None:
        return ""
    s = fmt(mv.value) + (f" ± {fmt(mv.stderr)}" if mv.stderr is not None else "")
    for f in report.cells[(row, col.task)].result.failure_metrics(col.filter):
        s += f"; {f.metric} {fmt(f.value)}"
    return s


def cell_text(report: Report, row: ModelConfig, col: Column) -> str:
    """A results cell: value ± stderr (n), and failure rates of the same filter beside it."""
    mv = report.value(row, col)
    if mv is None:
        return ""
    n = report.cells[(row, col.task)].result.n
    value, _, failures = _value(report, row, col).partition("; ")
    return f"{value} (n={n})" + (f"; {failures}" if failures else "")


def reference_cell(ref: PublishedFigure, col: Column) -> str:
    """A published figure in a column that measures the same benchmark split and metric."""
    if col.task in ref.tasks and col.metric == ref.metric:
        return f"{fmt(ref.value)} (published)"
    return ""


def results_rows(report: Report) -> Table:
    """All results, one line per (configuration, task column), then the published figures."""
    header = ["configuration", "task", "metric (filter)", "value", "n"]
    body = []
    names = distinct_names(report.rows)
    for row in report.rows:
        for col in report.columns:
            value = _value(report, row, col)
            if value:
                body.append([names[row], col.task, f"{col.metric} ({col.filter})", value,
                             str(report.cells[(row, col.task)].result.n)])
    for ref in report.references:
        for col in report.columns:
            if reference_cell(ref, col):
                body.append([f"published: {ref.model}", col.task, ref.metric, f"{fmt(ref.value)} (published)", "-"])
    return header, body


def leaderboard_rows(report: Report) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Header, body and tooltips of the leaderboard."""
    lb = report.leaderboard
    body, titles = [], []
    for row in lb.rows:
        body.append([row.name or row.label] + [c.text for c in row.columns])
        titles.append(["; ".join(c.full_label for c in row.configs)] + [c.title for c in row.columns])
    return lb.header, body, titles


def leaderboard_text(report: Report, outputs: "Outputs | None" = None, width: int = WIDTH) -> str:
    """What `reproduce` and `report` print when they end: the leaderboard as a terminal table
    (the HTML page's columns), then the files written, the HTML page last."""
    header, body, _ = leaderboard_rows(report)
    lines = ["Leaderboard", terminal_table(header, body, width) if body else "(no results)"]
    if outputs is not None:
        lines += ["", f"Report: {outputs.markdown}, {outputs.table_csv}, {outputs.paired_csv}", str(outputs.html)]
    return "\n".join(lines)


def _direction(c: Comparison) -> str:
    return {True: "higher", False: "lower"}.get(c.higher_is_better, "?")


def _side(c: Comparison, which: str) -> str:
    """One side of a comparison: its task (filter) and, where the sides are different models or
    configurations, the model's readable name."""
    cell, filt = (c.a, c.filter_a) if which == "a" else (c.b, c.filter_b)
    s = cell.result.task + (f" ({filt})" if filt != "none" else "")
    if c.kind in (views.ADAPTER, views.CONTROL) or c.a.config.model_name != c.b.config.model_name:
        s += f"\n{cell.config.name}"
    return s


def verdict(c: Comparison) -> str:
    """For a control comparison: is the real run significantly better than its control?"""
    better = c.b_significantly_better
    if better is None:
        return "-"
    return "real significantly better" if better else "NOT significantly better than control"


def paired_rows(comparisons: list[Comparison]) -> Table:
    """Header and body of a paired-comparison table (one view)."""
    kind = comparisons[0].kind if comparisons else ""
    header = ["model", "a", "b", "metric (better)", "n paired (by)", "a", "b", "b − a ± se", "95% CI",
              "a right, b wrong", "a wrong, b right", "McNemar p"]
    if kind == views.ADAPTER:
        header.append("scored on")
    if kind == views.CONTROL:
        header.append("verdict")
    body = []
    for c, name in zip(comparisons, comparison_names(comparisons)):
        s = c.stats
        line = [name, _side(c, "a"), _side(c, "b"), f"{c.metric} ({_direction(c)})"]
        if s is None:
            line += ["-"] * 7 + [f"not computed: {c.problem}"]
        else:
            conf = f"{int(round(100 * s.confidence))}%"
            line += [
                f"{s.n} ({c.item_key})", fmt(s.mean_a), fmt(s.mean_b), f"{s.diff:+.4f} ± {fmt(s.diff_stderr)}",
                f"[{s.ci_low:+.4f}, {s.ci_high:+.4f}]" + ("" if conf == "95%" else f" ({conf})"),
                "-" if s.a_only is None else f"{s.a_only} ({_pct(s.a_only_share)})",
                "-" if s.b_only is None else f"{s.b_only} ({_pct(s.b_only_share)})",
                "-" if s.mcnemar_p is None else f"{s.mcnemar_p:.4g}",
            ]
        if kind == views.ADAPTER:
            split = c.b.result.metadata.get("evaluation_split")
            line.append(SPLIT_LABELS.get(str(split), str(split)) if split else "-")
        if kind == views.CONTROL:
            line.append(verdict(c))
        body.append(line)
    if not any(c.stats is not None and c.stats.binary for c in comparisons):
        # No 0/1 scores (WER, mean scores): flips and McNemar do not exist; drop their columns.
        # The McNemar column stays when it holds a "not computed" reason.
        gone = ("a right, b wrong", "a wrong, b right") + (
            ("McNemar p",) if all(c.stats is not None for c in comparisons) else ())
        keep = [i for i, h in enumerate(header) if h not in gone]
        header = [header[i] for i in keep]
        body = [[r[i] for i in keep] for r in body]
    return header, body


def seed_rows(report: Report) -> Table:
    """The seed's three MMLU numbers per configuration, task and filter."""
    header = ["configuration", "task", "filter", "Total", "Answered", "answered share", "n"]
    names = distinct_names(s.cell.config for s in report.seed)
    body = [[names[s.cell.config], s.cell.result.task, s.filter, fmt(s.total), fmt(s.answered),
             fmt(s.answered_share), str(s.n)] for s in report.seed]
    return header, body


def agreement_rows(report: Report) -> Table:
    """Backbone vs audio LLM agreement: the seed's (over backbone-answered items) and over both answered."""
    header = ["audio LLM vs backbone", "filter", "items paired", "backbone answered", "both answered",
              "same answer", "seed agreement (of backbone answered)", "agreement of both answered", "both right"]
    body = []
    names = comparison_names([a.comparison for a in report.agreements])
    for a, name in zip(report.agreements, names):
        c = a.comparison
        if a.problem:
            body.append([name, c.filter_b, "-", "-", "-", "-", f"not computed: {a.problem}", "-", "-"])
            continue
        body.append([name, c.filter_b, str(a.n_paired), str(a.n_backbone_answered), str(a.n_both_answered),
                     str(a.n_same), fmt(a.seed_rate), fmt(a.rate), str(a.n_both_correct)])
    return header, body


def label_rows(report: Report) -> Table:
    """Per timbre run and task: label counts, the majority-class accuracy and the model's."""
    from lm_eval_audio.report.seed_views import label_distributions

    header = ["configuration", "task", "items", "label counts", "majority label", "majority-class accuracy",
              "model accuracy"]
    body = []
    dists = label_distributions(report.runs)
    names = distinct_names(d.run.model_config for d in dists)
    for d in dists:
        label = names[d.run.model_config]
        acc = f"{fmt(d.accuracy)} (exact_match, {d.accuracy_filter})" if d.accuracy is not None else "-"
        if d.problem:
            body.append([label, d.task, "-", f"not computed: {d.problem}", "-", "-", acc])
            continue
        top, share = d.majority or ("-", None)
        split = f" · {SPLIT_LABELS.get(str(d.split), d.split)}" if d.split else ""
        body.append([label, d.task + split, str(d.n), ", ".join(f"{k}: {v}" for k, v in d.counts.items()), top,
                     fmt(share), acc])
    return header, body


def training_rows(report: Report) -> Table:
    """Per scored adapter: the step it was taken at, its run's steps and epochs, the last loss."""
    from lm_eval_audio.report.seed_views import adapter_trainings

    header = ["adapter", "scored step", "of the run's steps", "epoch", "loss at the step"]
    body = [[t.run.model_config.short(t.adapter), str(t.step), str(t.run_steps),
             fmt(t.epoch), fmt(t.final_loss)] for t in adapter_trainings(report.runs)]
    return header, body


def _checks_text(checks: dict) -> str:
    """The batch self-check in words: how many requests were rescored alone and the largest
    difference from their batched scores."""
    if not checks:
        return "not recorded"
    n = checks.get("verify_batch")
    if not n:
        return "off"
    else:
        diff = checks.get("verify_batch_max_abs_diff")
        text = f"{n} requests rescored alone: largest difference {'-' if diff is None else f'{diff:.2g}'}"
    rest = [f"{k.removeprefix('verify_batch').strip('_.').replace('_', ' ')} {v}" for k, v in checks.items()
            if k not in ("verify_batch", "verify_batch_max_abs_diff") and v is not None]
    return "; ".join([text] + rest)


def checks_rows(report: Report) -> Table:
    """Per configuration: its protocol field by field, audio control and the batch self-check (its
    tasks are in the results table)."""
    header = ["configuration", "chat template", "system instruction", "few-shot", "TTS", "audio control",
              "verify_batch (batch self-check)"]
    by_config: dict[ModelConfig, list] = {}
    for run in report.runs:
        by_config.setdefault(run.model_config, []).append(run)
    body = []
    names = distinct_names(by_config)
    for config in sorted(by_config, key=lambda c: c.sort_key):
        runs, p = by_config[config], config.protocol
        shots = "/".join(str(s) for s in p.fewshot) + (" (multiturn)" if p.fewshot_as_multiturn else "")
        tts = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in p.tts) or "-"
        body.append([names[config], f"applied (sha {p.chat_template[:6]})" if p.chat_template else "none",
                     f"sha {p.system_instruction[:6]}" if p.system_instruction else "none", shots, tts,
                     config.control or "none (real audio)",
                     "; ".join(dict.fromkeys(_checks_text(r.checks) for r in runs))])
    return header, body


def reference_table(report: Report) -> Table:
    """Every published figure with its source."""
    header = ["model", "benchmark", "metric", "value", "source", "note"]
    return header, [[r.model, r.benchmark, r.metric, fmt(r.value), r.source,
                     "; ".join(n for n in (f"published as {r.published_as}", r.note) if n)] for r in report.references]


def _md_table(header: list[str], body: list[list[str]]) -> str:
    # Split by columns where a line would pass a 120-column terminal (the first column repeats).
    return markdown_tables(header, [[v.replace("\n", " · ") for v in r] for r in body])


def _paired_sections(report: Report) -> list[tuple[str, str, Table | None]]:
    out = []
    for kind in (views.DEGRADATION, views.ADAPTER, views.CONTROL, views.ASR):
        comps = report.of_kind(kind)
        title, text = SECTIONS[kind]
        out.append((title, text or "", paired_rows(comps) if comps else None))
    return out


def to_markdown(report: Report) -> str:
    """The whole report as Markdown."""
    parts = ["# lm-eval comparison report", ""]

    def section(key: str, table: Table | None, empty: str = "") -> None:
        title, text = SECTIONS[key]
        parts.extend([f"## {title}", ""] + ([text, ""] if text else []))
        parts.extend([_md_table(*table)] if table and table[1] else [empty or "Nothing to show.", ""])

    lb_header, lb_body, _ = leaderboard_rows(report)
    section("leaderboard", (lb_header, lb_body))
    parts += [f"- {c}" for c in report.leaderboard.captions] + [""]
    backbone = report.of_kind(views.BACKBONE)
    section("backbone", paired_rows(backbone) if backbone else None, EMPTY[views.BACKBONE])
    section("seed", seed_rows(report), "No run reports exact_match_answered.")
    section("agreement", agreement_rows(report), EMPTY[views.BACKBONE])
    section("labels", label_rows(report), "No timbre run.")
    section("training", training_rows(report), "No run scored an adapter with a trainer log.")
    for kind, (title, text, table) in zip((views.DEGRADATION, views.ADAPTER, views.CONTROL, views.ASR),
                                          _paired_sections(report)):
        parts.extend([f"## {title}", ""] + ([text, ""] if text else []))
        parts.extend([_md_table(*table)] if table else [EMPTY[kind], ""])
    section("checks", checks_rows(report))
    section("results", results_rows(report))
    if report.references:
        # A list, not a table: its sources and notes are sentences, which wrap in a terminal.
        parts += ["## Published figures", ""] + [
            f"- {m}, {b}, {metric} {v}: {src}" + (f" ({note})" if note else "")
            for m, b, metric, v, src, note in reference_table(report)[1]] + [""]
    parts += ["## Notes", ""]
    parts += [f"- {n}" for n in report.notes] or ["- none: every input matched"]
    parts += ["", "## Inputs", ""] + [f"- `{r.path}`" for r in report.runs] + [""]
    return "\n".join(parts)


def write_table_csv(report: Report, path: Path) -> None:
    """Long-format CSV: one line per configuration, task, metric and filter, at full precision."""
    fields = ["kind", "row", "name", "model", "checkpoint", "adapter", "mode", "other_args", "control", "protocol", "task",
              "metric", "filter", "value", "stderr", "n", "higher_is_better", "source"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for (row, task), cell in sorted(report.cells.items(), key=lambda kv: (kv[0][0].full_label, kv[0][1])):
            for (metric, filt), mv in cell.result.metrics.items():
                w.writerow(dict(
                    kind="measured", row=row.label, name=row.name, model=row.model, checkpoint=row.checkpoint,
                    adapter=row.adapter or "", mode=row.mode or "",
                    other_args=",".join(f"{k}={v}" for k, v in row.other_args), control=row.control or "",
                    protocol=row.protocol.summary, task=task, metric=metric,
                    filter=filt, value=repr(mv.value), stderr="" if mv.stderr is None else repr(mv.stderr),
                    n=cell.result.n, higher_is_better=mv.higher_is_better, source=str(cell.run.path)))
        for ref in report.references:
            w.writerow(dict(kind="published", row=ref.model, name=ref.model, model=ref.model, checkpoint="", adapter="",
                            mode="", other_args="", control="", protocol="", task=" ".join(ref.tasks) or ref.benchmark,
                            metric=ref.metric, filter="", value=repr(ref.value), stderr="", n="",
                            higher_is_better=ref.metric != "wer", source=ref.source))


def write_paired_csv(report: Report, path: Path) -> None:
    """Every paired comparison at full precision, including those that could not be computed."""
    fields = ["kind", "model", "config_a", "task_a", "metric_a", "filter_a", "config_b", "task_b", "metric_b",
              "filter_b", "item_key", "n", "mean_a", "mean_b", "diff", "diff_stderr", "ci_low", "ci_high",
              "confidence", "a_only", "b_only", "both", "neither", "mcnemar_p", "b_significantly_better",
              "evaluation_split", "n_only_a", "n_only_b", "n_mismatched", "pairing_note", "problem"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for c in report.comparisons:
            s = c.stats
            row = dict(kind=c.kind, model=c.model, config_a=c.a.config.full_label, task_a=c.a.result.task,
                       metric_a=c.metric_a, filter_a=c.filter_a, config_b=c.b.config.full_label,
                       task_b=c.b.result.task, metric_b=c.metric_b, filter_b=c.filter_b, item_key=c.item_key,
                       b_significantly_better="" if c.b_significantly_better is None else c.b_significantly_better,
                       evaluation_split=c.b.result.metadata.get("evaluation_split", ""),
                       n_only_a=c.n_only_a, n_only_b=c.n_only_b, n_mismatched=c.n_mismatched,
                       pairing_note=c.pairing_note or "", problem=c.problem or "")
            if s is not None:
                row.update({k: ("" if getattr(s, k) is None else repr(getattr(s, k))) for k in (
                    "n", "mean_a", "mean_b", "diff", "diff_stderr", "ci_low", "ci_high", "confidence",
                    "a_only", "b_only", "both", "neither", "mcnemar_p")})
            w.writerow(row)


def _breakable(text: str) -> str:
    """Escaped text that wraps only between words: an identifier (`timbre_range_seed_ft_validation`,
    `backbone-tiny`, `tiny.en`) is kept on one line; file paths may break after their slashes."""
    def word(w: str) -> str:
        if "/" in w:
            return html.escape(w).replace("/", "/<wbr>")
        return f'<span class="id">{html.escape(w)}</span>' if re.search(r"[-_.]", w) else html.escape(w)

    return "".join(word(w) if w.strip() else w for w in re.split(r"(\s+)", text))


def _html_cell(value: str, tag: str = "td", title: str = "") -> str:
    t = f' title="{html.escape(title)}"' if title else ""
    first, _, rest = value.partition("\n")
    inner = _breakable(first) + (f'<br><span class="muted">{_breakable(rest)}</span>' if rest else "")
    cls = ' class="warn"' if value.startswith("NOT ") else ""
    return f"<{tag}{t}{cls}>{inner}</{tag}>"


def html_table(header: list[str], body: list[list[str]], css_class: str,
               titles: list[list[str]] | None = None) -> str:
    """An HTML table; cells may hold a second, muted line after a newline; optional tooltips."""
    head = "".join(_html_cell(h, "th") for h in header)
    rows = []
    for i, r in enumerate(body):
        cls = ' class="published"' if r and r[0].startswith("published:") else ""
        tips = titles[i] if titles else [""] * len(r)
        rows.append(f"<tr{cls}>" + "".join(_html_cell(v, title=t) for v, t in zip(r, tips)) + "</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def to_html(report: Report) -> str:
    """The report as one HTML page with its plots embedded (no external files or scripts)."""
    import jinja2

    from lm_eval_audio.report.plots import ladder_figure, loss_figure, paired_figure, scores_figure
    from lm_eval_audio.report.seed_views import adapter_trainings

    def img(png: bytes | None, alt: str) -> str:
        if png is None:
            return ""
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    def section(key: str, body: str) -> dict:
        title, text = SECTIONS[key]
        return {"id": key.replace(" ", ""), "title": title, "text": text, "body": body}

    lb_header, lb_body, lb_titles = leaderboard_rows(report)
    backbone = report.of_kind(views.BACKBONE)
    sections = [
        section("leaderboard", html_table(lb_header, lb_body, "leaderboard", lb_titles)
                + "<ul class=\"captions\">" + "".join(f"<li>{html.escape(c)}</li>" for c in report.leaderboard.captions)
                + "</ul>"),
        section("backbone", (html_table(*paired_rows(backbone), "paired")
                             + img(paired_figure(backbone, "audio LLM − backbone, text, paired by item"), "backbone"))
                if backbone else f"<p>{EMPTY[views.BACKBONE]}</p>"),
        section("ladder", img(ladder_figure(report), "ladder") or "<p>No model has a backbone, text and speech run "
                "to draw a ladder from.</p>"),
        section("seed", html_table(*seed_rows(report), "seed") if report.seed else
                "<p>No run reports exact_match_answered.</p>"),
        section("agreement", html_table(*agreement_rows(report), "seed") if report.agreements else
                f"<p>{EMPTY[views.BACKBONE]}</p>"),
    ]
    labels, trainings = label_rows(report), training_rows(report)
    sections.append(section("labels", html_table(*labels, "seed") if labels[1] else "<p>No timbre run.</p>"))
    sections.append(section("training", html_table(*trainings, "seed")
                            + img(loss_figure(adapter_trainings(report.runs)), "adapter training loss")
                            if trainings[1] else "<p>No run scored an adapter with a trainer log.</p>"))
    for kind in (views.DEGRADATION, views.ADAPTER, views.CONTROL, views.ASR):
        comps = report.of_kind(kind)
        body = (html_table(*paired_rows(comps), "paired")
                + img(paired_figure(comps, f"{kind}, paired by item"), kind)) if comps else f"<p>{EMPTY[kind]}</p>"
        sections.append(section(kind, body))
    sections.append(section("checks", html_table(*checks_rows(report), "checks")))
    sections.append(section("results", html_table(*results_rows(report), "results")
                            + img(scores_figure(report), "scores by configuration")))
    env = jinja2.Environment(loader=jinja2.PackageLoader("lm_eval_audio.report", "."),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    template = env.get_template("template.html.j2")
    return template.render(
        sections=sections,
        reference_table=html_table(*reference_table(report), "refs") if report.references else "",
        notes=report.notes, inputs=[str(r.path) for r in report.runs],
        published_rows=any(reference_cell(ref, col) for ref in report.references for col in report.columns),
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
