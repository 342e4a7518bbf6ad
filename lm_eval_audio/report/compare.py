"""Turn loaded runs into the comparison: table cells, paired comparisons and plain notes.

Rows are model configurations, columns are tasks. Two views pair runs item by item:
- degradation: the same model on a spoken task and on its text twin (same questions, paired by
  doc id, as the spoken-MMLU tasks are built to allow);
- adapters: a configuration with an adapter against the same configuration without it, on the
  same task.
Everything that cannot be compared (a task in one run only, different item sets, no per-sample
log) becomes a note in the report instead of disappearing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from lm_eval_audio.report.load import (
    MetricValue, ResultsError, Run, TaskResult, load_run, load_sample_scores,
)
from lm_eval_audio.report.model_config import ModelConfig
from lm_eval_audio.report.reference import PUBLISHED, PublishedFigure
from lm_eval_audio.report.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, PairedStats, paired_stats

logger = logging.getLogger(__name__)

SPOKEN_PREFIX = "spoken_"
# Naming rules from a spoken task to its text twin, tried in order when neither the command
# line nor the task's metadata (`text_twin`) names one: spoken_mmlu_500 -> mmlu_twin_500.
TWIN_RENAMES = (("spoken_mmlu", "mmlu_twin"), ("spoken_", ""))


@dataclass(frozen=True)
class ReportOptions:
    """Settings of one report."""

    pairs: tuple[tuple[str, str], ...] = ()  # explicit (spoken task, text task) pairs
    confidence: float = 0.95
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    references: bool = True


@dataclass(frozen=True)
class Cell:
    """One (row, task) of the table and the run it comes from."""

    config: ModelConfig
    result: TaskResult
    run: Run


@dataclass(frozen=True)
class Column:
    """A table column: one task's headline metric under one filter."""

    task: str
    metric: str
    filter: str

    @property
    def label(self) -> str:
        return self.task if self.filter == "none" else f"{self.task} ({self.filter})"


@dataclass
class Comparison:
    """A paired comparison b - a on the items both runs scored."""

    kind: str  # "speech - text" or "adapter - base"
    model: str  # label of the model (without mode for degradation)
    a: Cell
    b: Cell
    metric_a: str
    filter_a: str
    metric_b: str
    filter_b: str
    stats: PairedStats | None
    n_only_a: int = 0
    n_only_b: int = 0
    n_mismatched: int = 0
    problem: str | None = None  # why stats is None

    @property
    def higher_is_better(self) -> bool | None:
        mv = self.b.result.metrics.get((self.metric_b, self.filter_b))
        return None if mv is None else mv.higher_is_better

    @property
    def metric(self) -> str:
        """The compared metric's name ("acc vs exact_match" when the two tasks score differently)."""
        return self.metric_a if self.metric_a == self.metric_b else f"{self.metric_a} vs {self.metric_b}"


@dataclass
class Report:
    """Everything the renderers draw."""

    runs: list[Run]
    rows: list[ModelConfig]
    columns: list[Column]
    cells: dict[tuple[ModelConfig, str], Cell]
    comparisons: list[Comparison]
    references: list[PublishedFigure]
    notes: list[str] = field(default_factory=list)
    options: ReportOptions = field(default_factory=ReportOptions)

    def value(self, row: ModelConfig, col: Column) -> MetricValue | None:
        """The metric in a table cell, or None when that row did not run that column."""
        cell = self.cells.get((row, col.task))
        return None if cell is None else cell.result.metrics.get((col.metric, col.filter))


def is_spoken(task: str, result: TaskResult) -> bool:
    """A task the model hears: named spoken_* or configured with doc_to_audio."""
    return task.startswith(SPOKEN_PREFIX) or bool(result.config.get("doc_to_audio"))


def twin_candidates(task: str, result: TaskResult, explicit: dict[str, str]) -> list[str]:
    """Text tasks that may hold the same items as spoken `task`, most specific first."""
    out: list[str] = []
    if task in explicit:
        out.append(explicit[task])
    meta = result.config.get("metadata") or {}
    if isinstance(meta, dict) and meta.get("text_twin"):
        out.append(str(meta["text_twin"]))
    for old, new in TWIN_RENAMES:
        if task.startswith(old):
            name = new + task[len(old):]
            out.append(name)
            if name.endswith("_gen"):
                out.append(name[: -len("_gen")])
    return [t for t in dict.fromkeys(out) if t and t != task]


def _collect_cells(runs: list[Run], notes: list[str]) -> dict[tuple[ModelConfig, str], Cell]:
    cells: dict[tuple[ModelConfig, str], Cell] = {}
    for run in sorted(runs, key=lambda r: r.date_id):
        for task, result in run.tasks.items():
            key = (run.model_config, task)
            if key in cells:
                old = cells[key].run
                notes.append(
                    f"{run.model_config.label} ran {task} more than once; using {run.path.name} "
                    f"(latest) over {old.path} ")
            cells[key] = Cell(run.model_config, result, run)
    return cells


def _columns(cells: dict[tuple[ModelConfig, str], Cell]) -> list[Column]:
    subtasks = set()
    for cell in cells.values():
        for subs in (cell.run.raw.get("group_subtasks") or {}).values():
            subtasks.update(subs)
    cols: dict[Column, None] = {}
    for (_, task), cell in sorted(cells.items(), key=lambda kv: kv[0][1]):
        if task in subtasks:
            continue  # shown through its group; the CSV keeps every subtask
        for mv in cell.result.primary():
            cols[Column(task, mv.metric, mv.filter)] = None
    return list(cols)


def _coverage_notes(rows: list[ModelConfig], columns: list[Column], cells, notes: list[str]) -> None:
    """Name the columns whose rows scored different numbers of items.

    Empty cells are visible in the table itself, and the paired views name the runs they
    lack; what the table cannot show is that two filled cells of a column cover different
    items (e.g. one run used --limit).
    """
    for task in dict.fromkeys(c.task for c in columns):
        have = [r for r in rows if (r, task) in cells]
        ns = {r.label: cells[(r, task)].result.n for r in have}
        if len(set(ns.values())) > 1:
            notes.append(f"{task}: configurations scored different numbers of items ("
                         + ", ".join(f"{k}: {v}" for k, v in ns.items())
                         + "); their scores are not on the same items")


def _pair(kind: str, model: str, a: Cell, b: Cell, ma: str, fa: str, mb: str, fb: str,
          opts: ReportOptions, same_docs: bool) -> Comparison:
    comp = Comparison(kind, model, a, b, ma, fa, mb, fb, None)
    missing = [c for c in (a, b) if c.result.samples_path is None]
    if missing:
        comp.problem = ("no per-sample log for " + ", ".join(
            f"{c.result.task} of {c.config.label} ({c.run.path.name})" for c in missing)
            + "; rerun lm_eval with --log_samples")
        return comp
    try:
        sa = load_sample_scores(a.result.samples_path, ma, fa)
        sb = load_sample_scores(b.result.samples_path, mb, fb)
    except ResultsError as e:
        comp.problem = str(e)
        return comp
    common = sorted(set(sa) & set(sb))
    comp.n_only_a = len(set(sa) - set(sb))
    comp.n_only_b = len(set(sb) - set(sa))
    # Targets can be compared only between tasks that state them the same way.
    same_format = a.result.config.get("output_type") == b.result.config.get("output_type")
    keep = []
    for d in common:
        if same_format and sa[d].target.strip() != sb[d].target.strip():
            continue
        if same_docs and sa[d].doc_hash and sb[d].doc_hash and sa[d].doc_hash != sb[d].doc_hash:
            continue
        keep.append(d)
    comp.n_mismatched = len(common) - len(keep)
    if not keep:
        comp.problem = (f"no item is scored in both runs ({len(sa)} vs {len(sb)} items, "
                        f"{comp.n_mismatched} with the same doc id but a different document or target)")
        return comp
    comp.stats = paired_stats(
        np.array([sa[d].value for d in keep]), np.array([sb[d].value for d in keep]),
        confidence=opts.confidence, n_resamples=opts.n_resamples, seed=opts.seed)
    return comp


def _matching_filters(a: TaskResult, b: TaskResult) -> list[tuple[str, str, str, str]]:
    """(metric_a, filter_a, metric_b, filter_b) to compare, one per headline filter of b.

    The same metric when `a` has it; otherwise the two headline metrics, provided they point
    the same way (e.g. loglikelihood `acc` of a text twin against the `exact_match` of a
    generation-scored spoken task: both are per-item correctness).
    """
    out = []
    for mb in b.primary():
        fas = [f for (m, f) in a.metrics if m == mb.metric]
        if fas:
            fa = mb.filter if mb.filter in fas else next(
                (mv.filter for mv in a.primary() if mv.metric == mb.metric), fas[0])
            out.append((mb.metric, fa, mb.metric, mb.filter))
            continue
        pa = a.primary()
        if pa and pa[0].higher_is_better == mb.higher_is_better:
            out.append((pa[0].metric, pa[0].filter, mb.metric, mb.filter))
    return out


def _degradation(cells, opts: ReportOptions, notes: list[str]) -> list[Comparison]:
    explicit = dict(opts.pairs)
    by_model: dict[tuple, list[Cell]] = defaultdict(list)
    for cell in cells.values():
        by_model[cell.config.model_key].append(cell)
    comps = []
    for model_cells in by_model.values():
        tasks: dict[str, list[Cell]] = defaultdict(list)
        for c in model_cells:
            tasks[c.result.task].append(c)
        for spoken in sorted(model_cells, key=lambda c: (c.result.task, c.config.sort_key)):
            st = spoken.result.task
            if not (is_spoken(st, spoken.result) or st in explicit) or spoken.result.is_group:
                continue
            cands = twin_candidates(st, spoken.result, explicit)
            twin = next((t for t in cands if t in tasks), None)
            if twin is None:
                notes.append(f"{spoken.config.label} ran {st} but no text twin "
                             f"({' or '.join(cands) or 'none known'}): no degradation view for it")
                continue
            for text in sorted(tasks[twin], key=lambda c: c.config.sort_key):
                pairs = _matching_filters(text.result, spoken.result)
                if not pairs:
                    notes.append(f"{st} and {twin} of {spoken.config.label} share no metric")
                for ma, fa, mb, fb in pairs:
                    label = ModelConfig(spoken.config.model, spoken.config.checkpoint,
                                        spoken.config.adapter, None, spoken.config.other_args).label
                    comps.append(_pair("speech - text", label, text, spoken, ma, fa, mb, fb, opts,
                                       same_docs=False))
    return comps


def _adapters(cells, opts: ReportOptions, notes: list[str]) -> list[Comparison]:
    comps = []
    adapted = {config for (config, _) in cells if config.adapter is not None}
    for config in sorted(adapted, key=lambda c: c.sort_key):
        base_tasks = {t for (c, t) in cells if c == config.base}
        lacking = sorted(base_tasks - {t for (c, t) in cells if c == config})
        if base_tasks and lacking:
            notes.append(f"{config.base.label} ran {', '.join(lacking)} but {config.label} did not: "
                         "no before/after view for those")
    for (config, task), after in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0].sort_key)):
        if config.adapter is None:
            continue
        before = cells.get((config.base, task))
        if before is None:
            notes.append(f"{config.label} ran {task} but its base ({config.base.label}) did not: "
                         "no before/after view for it")
            continue
        for ma, fa, mb, fb in _matching_filters(before.result, after.result):
            comps.append(_pair("adapter - base", config.label, before, after, ma, fa, mb, fb, opts,
                               same_docs=True))
    return comps


def build_report(paths: list, options: ReportOptions | None = None) -> Report:
    """Load every results file under `paths` and build the comparison."""
    from lm_eval_audio.report.load import find_results_files

    opts = options or ReportOptions()
    files = find_results_files(paths)
    runs = [load_run(p) for p in files]
    notes: list[str] = []
    cells = _collect_cells(runs, notes)
    rows = sorted({c.config for c in cells.values()},
                  key=lambda r: r.sort_key)
    columns = _columns(cells)
    _coverage_notes(rows, columns, cells, notes)
    comparisons = _degradation(cells, opts, notes) + _adapters(cells, opts, notes)
    for c in comparisons:
        if c.problem:
            notes.append(f"{c.kind} for {c.model}, {c.a.result.task} vs {c.b.result.task}: {c.problem}")
        elif c.n_only_a or c.n_only_b or c.n_mismatched:
            same = c.a.result.task == c.b.result.task
            name_a = c.a.config.label if same else c.a.result.task
            name_b = c.b.config.label if same else c.b.result.task
            notes.append(
                f"{c.kind} for {c.model}, {c.a.result.task} vs {c.b.result.task}: compared "
                f"{c.stats.n} common items; {c.n_only_a} only in {name_a}, {c.n_only_b} only "
                f"in {name_b}, {c.n_mismatched} with the same doc id but a different "
                "document or target (left out)")
    refs = list(PUBLISHED) if opts.references else []
    logger.info("report: %d runs, %d rows, %d columns, %d paired comparisons, %d notes",
                len(runs), len(rows), len(columns), len(comparisons), len(notes))
    return Report(runs, rows, columns, cells, comparisons, refs, notes, opts)
