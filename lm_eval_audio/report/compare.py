"""Turn loaded runs into the comparison: table cells, paired comparisons and plain notes.

Rows are model configurations (model arguments and protocol: `model_config`), columns are
tasks. `views` picks the pairs of cells to compare item by item (speech vs text, backbone vs
audio LLM, adapter vs base, real vs control, Whisper vs audio LLM) and `pairs` compares them.
`leaderboard` folds the rows into one per model, `seed` adds the seed study's MMLU numbers.
Everything that cannot be compared (a task in one run only, different item sets, no per-sample
log, pairing by doc_id for lack of an item id) becomes a note in the report instead of
disappearing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lm_eval_audio.report.leaderboard import Leaderboard, build_leaderboard
from lm_eval_audio.report.load import MetricValue, Run, load_run
from lm_eval_audio.report.model_config import ModelConfig
from lm_eval_audio.report.pairs import Cell, Comparison, PairSettings
from lm_eval_audio.report.reference import PUBLISHED, PublishedFigure
from lm_eval_audio.report import views
from lm_eval_audio.report.seed import Agreement, SeedNumbers, agreement, seed_numbers
from lm_eval_audio.report.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportOptions:
    """Settings of one report."""

    pairs: tuple[tuple[str, str], ...] = ()  # explicit (spoken task, text task) pairs
    confidence: float = 0.95
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    references: bool = True
    leaderboard_filter: str = "choice"  # filter of the leaderboard's MMLU columns (same rule on text and speech)

    @property
    def pair_settings(self) -> PairSettings:
        """The statistics settings every paired comparison uses."""
        return PairSettings(self.confidence, self.n_resamples, self.seed)


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
    leaderboard: Leaderboard | None = None
    seed: list[SeedNumbers] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Comparison]:
        """The comparisons of one view (`views.KINDS`)."""
        return [c for c in self.comparisons if c.kind == kind]

    def value(self, row: ModelConfig, col: Column) -> MetricValue | None:
        """The metric in a table cell, or None when that row did not run that column."""
        cell = self.cells.get((row, col.task))
        return None if cell is None else cell.result.metrics.get((col.metric, col.filter))


def _collect_cells(runs: list[Run], notes: list[str]) -> dict[tuple[ModelConfig, str], Cell]:
    cells: dict[tuple[ModelConfig, str], Cell] = {}
    for run in sorted(runs, key=lambda r: r.date_id):
        for task, result in run.tasks.items():
            key = (run.model_config, task)
            if key in cells:
                old = cells[key].run
                notes.append(
                    f"{run.model_config.full_label} ran {task} more than once; using {run.path.name} "
                    f"(latest) over {old.path}")
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
        ns = {r.full_label: cells[(r, task)].result.n for r in have}
        if len(set(ns.values())) > 1:
            notes.append(f"{task}: configurations scored different numbers of items ("
                         + ", ".join(f"{k}: {v}" for k, v in ns.items())
                         + "); their scores are not on the same items")


def comparison_notes(c: Comparison) -> list[str]:
    """What a reader must know about one comparison: why it failed, how items were paired,
    which items were left out."""
    where = f"{c.kind} for {c.model}, {c.a.result.task} ({c.filter_a}) vs {c.b.result.task} ({c.filter_b})"
    out = []
    if c.pairing_note:
        out.append(f"{where}: {c.pairing_note}")
    if c.problem:
        out.append(f"{where}: {c.problem}")
    elif c.n_only_a or c.n_only_b or c.n_mismatched:
        same = c.a.result.task == c.b.result.task
        name_a = c.a.config.full_label if same else c.a.result.task
        name_b = c.b.config.full_label if same else c.b.result.task
        mism = f"{c.n_mismatched} with the same {c.item_key} but a different target or document (left out)"
        if c.mismatched_ids:
            mism += ": " + ", ".join(c.mismatched_ids[:5]) + (" ..." if len(c.mismatched_ids) > 5 else "")
        out.append(f"{where}: compared {c.stats.n} common items by {c.item_key}; {c.n_only_a} only in "
                   f"{name_a}, {c.n_only_b} only in {name_b}, {mism}")
    if c.doc_differs_ids:
        out.append(f"{where}: {len(c.doc_differs_ids)} items share their {c.item_key} but not their document "
                   f"(doc_hash) in the two runs; paired by identity (e.g. {c.doc_differs_ids[0]}): check that "
                   "the task versions and clips are the ones meant")
    return out


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
    ps = opts.pair_settings
    comparisons = (views.backbone(cells, ps, notes) + views.degradation(cells, ps, dict(opts.pairs), notes)
                   + views.adapters(cells, ps, notes) + views.controls(cells, ps, notes)
                   + views.asr(cells, ps, notes))
    for c in comparisons:
        notes += comparison_notes(c)
    refs = list(PUBLISHED) if opts.references else []
    board = build_leaderboard(cells, comparisons, opts.leaderboard_filter)
    notes += board.notes
    agreements = [agreement(c) for c in comparisons if c.kind == views.BACKBONE and c.stats is not None]
    for a in agreements:
        if a.problem:
            notes.append(f"agreement for {a.comparison.model} ({a.comparison.filter_b}): {a.problem}")
    ordered = [cells[k] for k in sorted(cells, key=lambda k: (k[0].sort_key, k[1]))]
    logger.info("report: %d runs, %d rows, %d columns, %d paired comparisons, %d notes",
                len(runs), len(rows), len(columns), len(comparisons), len(notes))
    return Report(runs, rows, columns, cells, comparisons, refs, notes, opts, board, seed_numbers(ordered),
                  agreements)
