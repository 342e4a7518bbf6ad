"""The leaderboard: one row per model (not per run mode), the seed study's headline columns.

A model's text-mode and audio-mode runs are one row: rows are grouped by `ModelConfig.model_key`
(backend, checkpoint, adapter, other model_args, audio control, protocol without TTS). Within
a group, runs with different TTS setups stay separate rows (the same model on two voices); a
text-only run (no TTS fields) lends its cells to each of them. An adapter's runs that are the
"after" of a before/after comparison show in its base model's row, in the before -> after
columns; an adapter configuration that ran anything else also gets a row of its own.

What each column reads is configuration (`LeaderboardSpec`), not code: the defaults name the
seed tasks of the contract (`mmlu_seed_backbone`/`mmlu_seed`/`spoken_mmlu_seed`, their `_mc`
twins, `librispeech_dev_clean_200`, the `timbre_range_seed*` tasks by `evaluation_split`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace

from lm_eval_audio.report.load import MetricValue
from lm_eval_audio.report.model_config import ModelConfig, disambiguate
from lm_eval_audio.report.pairs import Cell, Comparison
from lm_eval_audio.report.views import ADAPTER, DEGRADATION

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreColumn:
    """A column showing one task's score: the first of `tasks` that the row ran."""

    label: str
    tasks: tuple[str, ...]
    metrics: tuple[str, ...] = ("exact_match", "acc")  # the first the task reports
    any_task: bool = False  # when the row ran none of `tasks`: any task reporting the metric
    show_task: bool = False  # name the task under the value (the column spans several data sets)


@dataclass(frozen=True)
class BeforeAfterColumn:
    """A column showing adapter before -> after comparisons of tasks named `prefix*` whose
    metadata `evaluation_split` is `split`."""

    label: str
    prefix: str
    split: str
    filter: str = "strict"  # the filter shown when the task reports several (the seed's raw digit match)


@dataclass(frozen=True)
class LeaderboardSpec:
    """Which tasks the leaderboard's columns read."""

    mmlu_text: ScoreColumn = ScoreColumn("MMLU text", ("mmlu_seed_backbone", "mmlu_seed", "mmlu_seed_mc"))
    mmlu_speech: ScoreColumn = ScoreColumn("MMLU speech", ("spoken_mmlu_seed", "spoken_mmlu_seed_mc"))
    speech_minus_text: str = "speech − text"
    asr: ScoreColumn = ScoreColumn("LibriSpeech WER", ("librispeech_dev_clean_200", "librispeech_dev_clean_200_chat",
                                                       "librispeech_dev_clean"), ("wer",), any_task=True,
                                   show_task=True)
    timbre: tuple[BeforeAfterColumn, ...] = (
        BeforeAfterColumn("timbre before → after, scored on training items (seed)", "timbre_range", "train"),
        BeforeAfterColumn("timbre before → after, held-out validation", "timbre_range", "validation"),
    )


@dataclass
class LeaderCell:
    """One leaderboard cell: the text shown, a tooltip, and the numbers behind it (for tests)."""

    text: str = ""
    title: str = ""
    value: float | None = None  # the score, the difference, or the 'after' score
    source: list[str] = field(default_factory=list)  # "task (filter) of configuration" for each number


@dataclass
class LeaderRow:
    """One model: its label, protocol and the configurations whose runs fill the row."""

    label: str
    protocol: str
    configs: list[ModelConfig]
    cells: dict[str, Cell]
    columns: list[LeaderCell] = field(default_factory=list)
    name: str = ""  # what a reader calls the model; `label` and `protocol` stay in the hover text


@dataclass
class Leaderboard:
    """The table: header, rows, and what each column reads."""

    header: list[str]
    rows: list[LeaderRow]
    captions: list[str]
    notes: list[str]


def _fmt(x: float, signed: bool = False) -> str:
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _group_key(c: ModelConfig) -> tuple:
    return replace(c, mode=None, protocol=c.protocol.without_tts()), c.protocol.tts


def _rows(cells: dict[tuple[ModelConfig, str], Cell], folded: set[tuple[ModelConfig, str]],
          notes: list[str]) -> list[LeaderRow]:
    groups: dict[tuple, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    for (config, task), cell in cells.items():
        if (config, task) in folded:
            continue
        groups[_group_key(config)][task].append(cell)
    # A text-only run (no TTS fields) lends its cells to the same model's rows that have TTS.
    for (base, tts), tasks in list(groups.items()):
        siblings = [k for k in groups if k[0] == base and k[1]]
        if tts or not siblings:
            continue
        for sib in siblings:
            for task, cs in tasks.items():
                groups[sib].setdefault(task, cs)
        del groups[(base, tts)]
    rows, protocols = [], []
    for (base, tts), tasks in sorted(groups.items(), key=lambda kv: (kv[0][0].sort_key, kv[0][1])):
        chosen: dict[str, Cell] = {}
        for task, cs in tasks.items():
            cs = sorted(cs, key=lambda c: c.config.sort_key)
            chosen[task] = cs[0]
            if len(cs) > 1:
                notes.append(f"leaderboard row {base.model_full_label}: {task} was run by "
                             + ", ".join(c.config.full_label for c in cs) + f"; showing {cs[0].config.full_label}")
        configs = sorted({c.config for c in chosen.values()}, key=lambda c: c.sort_key)
        proto = replace(base.protocol, tts=tts)
        rows.append(LeaderRow(base.label, proto.summary, configs, chosen, name=base.name))
        protocols.append(proto)
    return distinct_names(rows, protocols)



def distinct_names(rows: list[LeaderRow], protocols: list) -> list[LeaderRow]:
    """Rows whose readable names are equal get what tells them apart, and only that
    (`model_config.disambiguate`)."""
    names = disambiguate([r.name for r in rows], [dict(r.configs[0].other_args) if r.configs else {} for r in rows],
                         protocols)
    for row, name in zip(rows, names):
        row.name = name
    return rows

def _filter_of(mvs: dict[tuple[str, str], MetricValue], metric: str, preferred: str) -> str | None:
    filters = [f for (m, f) in mvs if m == metric]
    if not filters:
        return None
    return preferred if preferred in filters else sorted(filters)[0]


def _score(row: LeaderRow, col: ScoreColumn, preferred_filter: str) -> tuple[LeaderCell, Cell | None, str | None]:
    tasks = list(col.tasks)
    if col.any_task:
        tasks += sorted(t for t, c in row.cells.items() if t not in tasks
                        and any(m in col.metrics for m, _ in c.result.metrics))
    for task in tasks:
        cell = row.cells.get(task)
        if cell is None:
            continue
        for metric in col.metrics:
            filt = _filter_of(cell.result.metrics, metric, preferred_filter)
            if filt is None:
                continue
            mv = cell.result.metrics[(metric, filt)]
            text = _fmt(mv.value) + (f" ± {mv.stderr:.3f}" if mv.stderr is not None else "")
            if col.show_task:
                text += f"\n{task}"
            src = f"{task} {metric} ({filt}) of {cell.config.full_label}"
            return LeaderCell(text, f"{src}, n={cell.result.n}", mv.value, [src]), cell, filt
    return LeaderCell(), None, None


def _diff_cell(comp: Comparison) -> LeaderCell:
    s = comp.stats
    conf = int(round(100 * s.confidence))
    text = f"{_fmt(s.diff, True)} [{_fmt(s.ci_low, True)}, {_fmt(s.ci_high, True)}]"
    return LeaderCell(text, f"{comp.title}, {comp.metric} ({comp.filter_b}), paired by {comp.item_key}, "
                      f"n={s.n}, {conf}% paired bootstrap CI", s.diff, [comp.title])


def build_leaderboard(cells: dict[tuple[ModelConfig, str], Cell], comparisons: list[Comparison],
                      preferred_filter: str, spec: LeaderboardSpec | None = None) -> Leaderboard:
    """The leaderboard of a report's cells and comparisons."""
    spec = spec or LeaderboardSpec()
    notes: list[str] = []
    before_after = [c for c in comparisons if c.kind == ADAPTER and c.stats is not None]
    after_keys = {(c.b.config, c.b.result.task) for c in before_after
                  if any(_in_column(c, col) for col in spec.timbre)}
    adapters = {config for config, _ in cells if config.adapter}
    # An adapter configuration folds into its base row when all it ran shows in a before -> after column.
    folded = {(cfg, t) for (cfg, t) in cells if cfg in adapters
              and all((cfg, t2) in after_keys for (c2, t2) in cells if c2 == cfg)}
    rows = _rows(cells, folded, notes)
    degr = [c for c in comparisons if c.kind == DEGRADATION and c.stats is not None]
    for row in rows:
        text, text_cell, _ = _score(row, spec.mmlu_text, preferred_filter)
        speech, speech_cell, speech_filter = _score(row, spec.mmlu_speech, preferred_filter)
        diff = LeaderCell()
        if text_cell is not None and speech_cell is not None:
            comp = next((c for c in degr if c.a is text_cell and c.b is speech_cell and c.filter_b == speech_filter),
                        None)
            diff = _diff_cell(comp) if comp else LeaderCell("not paired", "see the notes")
        asr, _, _ = _score(row, spec.asr, "none")
        row.columns = [text, speech, diff, asr]
        base_configs = set(row.configs)
        for col in spec.timbre:
            comps = [c for c in before_after if c.a.config in base_configs and _in_column(c, col)]
            shown = col.filter if any(c.filter_b == col.filter for c in comps) else \
                min((c.filter_b for c in comps), default=None)
            comps = [c for c in comps if c.filter_b == shown]
            row.columns.append(_before_after(comps))
    rows = _story_order(rows)
    header = ["model", spec.mmlu_text.label, spec.mmlu_speech.label, spec.speech_minus_text, spec.asr.label] + [
        c.label for c in spec.timbre]
    captions = [
        f"{spec.mmlu_text.label}: the first of {', '.join(spec.mmlu_text.tasks)} that the model ran; "
        f"{spec.mmlu_speech.label}: the first of {', '.join(spec.mmlu_speech.tasks)}. Generation tasks show "
        f"exact_match under the {preferred_filter!r} filter (the same rule on text and speech; the seed's own "
        "mix of rules is in the seed table below), multiple-choice tasks acc. Value ± lm-eval's standard error.",
        f"{spec.speech_minus_text}: the paired difference on the items both runs scored, with its 95% paired "
        "bootstrap interval.",
        f"{spec.asr.label}: corpus WER (lower is better) of the first of {', '.join(spec.asr.tasks)}, else of "
        "any task reporting WER (the task is named under the value).",
        "timbre before → after: the base model on the baseline prompt, then its adapter (on the fine-tune "
        "prompt where the task says so), same clips, exact_match under the column's filter (the seed's 'strict' "
        "by default) where the task has it; Δ with its 95% paired bootstrap interval. The seed scored "
        "its adapter on the items it was trained on: that column measures memorisation as much as skill; the "
        "held-out validation column is the sound figure.",
    ]
    return Leaderboard(header, rows, captions, notes)


def _story_order(rows: list[LeaderRow]) -> list[LeaderRow]:
    """Backbones first, then models by their leftmost filled column (MMLU before ASR-only rows);
    one model's rows stay together, a control right after its real run (`ModelConfig.sort_key`)."""
    def model_of(row: LeaderRow) -> tuple:
        c = row.configs[0] if row.configs else None
        return (c.model, c.checkpoint) if c else ()

    def first_col(row: LeaderRow) -> int:
        return next((i for i, c in enumerate(row.columns) if c.text), len(row.columns))

    rank: dict[tuple, int] = {}
    for row in rows:
        rank[model_of(row)] = min(rank.get(model_of(row), len(row.columns)), first_col(row))
    is_backbone = {model_of(r) for r in rows if any(c.result.metadata.get("role") == "backbone"
                                                    for c in r.cells.values())}
    order = {id(r): i for i, r in enumerate(rows)}  # _rows sorted them by sort_key
    return sorted(rows, key=lambda r: (model_of(r) not in is_backbone, rank[model_of(r)], model_of(r), order[id(r)]))


def _in_column(c: Comparison, col: BeforeAfterColumn) -> bool:
    return c.b.result.task.startswith(col.prefix) and str(c.b.result.metadata.get("evaluation_split")) == col.split


def _before_after(comps: list[Comparison]) -> LeaderCell:
    if not comps:
        return LeaderCell()
    parts, srcs = [], []
    for c in comps:
        s = c.stats
        name = c.b.config.short(c.b.config.adapter)
        parts.append(f"{_fmt(s.mean_a)} → {_fmt(s.mean_b)} (Δ {_fmt(s.diff, True)} "
                     f"[{_fmt(s.ci_low, True)}, {_fmt(s.ci_high, True)}]"
                     + (f", {name}" if len(comps) > 1 else "") + ")")
        srcs.append(f"{c.a.result.task} → {c.b.result.task} {c.metric} ({c.filter_b}), +{name}, n={s.n}")
    return LeaderCell("; ".join(parts), "; ".join(srcs), comps[0].stats.mean_b, srcs)
