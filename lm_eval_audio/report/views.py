"""Which cells a report compares, item by item. Each view is one rule; `pairs` does the comparing.

- speech - text: the same model on a spoken task and on its text twin (task metadata
  `text_twin`, a `--pair SPOKEN=TEXT`, or the naming rules in `TWIN_RENAMES`).
- audio LLM - backbone (the seed's first finding): a run of a task with metadata
  `role: backbone` against every other model's run of that task's `audio_llm_task`, both on
  text, same items. With several backbones and audio LLMs every combination is compared
  (each is one line: nothing is pooled), so no option is needed to choose.
- adapter - base: a configuration with an adapter against the same configuration without it,
  on the same task, or on the task its metadata names as `before_task` (the seed scored its
  adapter with the fine-tune prompt, `timbre_range_seed_ft`, against the base model on the
  baseline prompt, `timbre_range_seed`: same clips).
- real - control: a run with `audio_control=silence|shuffle` against the same configuration on
  the real audio, same task; the report marks where the real run is not significantly better.
- audio LLM - Whisper: every Whisper run of an ASR task against every other model's run of the
  same utterances (the same task, or its `_chat` variant), by corpus WER.
Control runs take part only in the control view; what cannot be compared becomes a note.
"""

from __future__ import annotations

from collections import defaultdict

from lm_eval_audio.report.load import TaskResult
from lm_eval_audio.report.model_config import ModelConfig
from lm_eval_audio.report.pairs import WER_METRICS, Cell, Comparison, PairSettings, compare_cells

DEGRADATION = "speech - text"
BACKBONE = "audio LLM - backbone"
ADAPTER = "adapter - base"
CONTROL = "real - control"
ASR = "audio LLM - Whisper"
KINDS = (BACKBONE, DEGRADATION, ADAPTER, CONTROL, ASR)

SPOKEN_PREFIX = "spoken_"
# Naming rules from a spoken task to its text twin, tried in order when neither the command
# line nor the task's metadata (`text_twin`) names one: spoken_mmlu_500 -> mmlu_twin_500.
TWIN_RENAMES = (("spoken_mmlu", "mmlu_twin"), ("spoken_", ""))
WHISPER_MODELS = frozenset({"whisper"})
Cells = dict[tuple[ModelConfig, str], Cell]


def is_spoken(task: str, result: TaskResult) -> bool:
    """A task the model hears: named spoken_* or configured with doc_to_audio."""
    return task.startswith(SPOKEN_PREFIX) or bool(result.config.get("doc_to_audio"))


def twin_candidates(task: str, result: TaskResult, explicit: dict[str, str]) -> list[str]:
    """Text tasks that may hold the same items as spoken `task`, most specific first."""
    out: list[str] = []
    if task in explicit:
        out.append(explicit[task])
    if result.metadata.get("text_twin"):
        out.append(str(result.metadata["text_twin"]))
    for old, new in TWIN_RENAMES:
        if task.startswith(old):
            name = new + task[len(old):]
            out.append(name)
            if name.endswith("_gen"):
                out.append(name[: -len("_gen")])
    return [t for t in dict.fromkeys(out) if t and t != task]


def matching_filters(a: TaskResult, b: TaskResult) -> list[tuple[str, str, str, str]]:
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


def _compare_all(kind: str, model: str, a: Cell, b: Cell, settings: PairSettings,
                 notes: list[str]) -> list[Comparison]:
    pairs = matching_filters(a.result, b.result)
    if not pairs:
        notes.append(f"{kind}: {a.result.task} of {a.config.full_label} and {b.result.task} of "
                     f"{b.config.full_label} share no metric")
    return [compare_cells(kind, model, a, b, ma, fa, mb, fb, settings) for ma, fa, mb, fb in pairs]


def _ordered(cells: Cells) -> list[Cell]:
    return [c for _, c in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0].sort_key))]


def degradation(cells: Cells, settings: PairSettings, explicit: dict[str, str], notes: list[str]) -> list[Comparison]:
    """speech - text for every spoken task whose model also ran its text twin."""
    by_model: dict[tuple, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells.values():
        by_model[cell.config.model_key][cell.result.task].append(cell)
    comps = []
    for spoken in _ordered(cells):
        st = spoken.result.task
        if spoken.config.control or spoken.result.is_group:
            continue
        if not (is_spoken(st, spoken.result) or st in explicit):
            continue
        tasks = by_model[spoken.config.model_key]
        cands = twin_candidates(st, spoken.result, explicit)
        twin = next((t for t in cands if t in tasks), None)
        if not cands:
            continue  # a task with audio but no text counterpart (ASR, timbre): not a twin view
        if twin is None:
            notes.append(f"{spoken.config.full_label} ran {st} but no text twin "
                         f"({' or '.join(cands) or 'none known'}): no degradation view for it")
            continue
        for text in sorted(tasks[twin], key=lambda c: c.config.sort_key):
            comps += _compare_all(DEGRADATION, spoken.config.model_full_label, text, spoken, settings, notes)
    return comps


def backbone(cells: Cells, settings: PairSettings, notes: list[str]) -> list[Comparison]:
    """audio LLM - backbone on the backbone task's `audio_llm_task`, same items."""
    comps = []
    for bb in _ordered(cells):
        if bb.result.metadata.get("role") != "backbone" or bb.config.control:
            continue
        target = bb.result.metadata.get("audio_llm_task")
        if not target:
            notes.append(f"{bb.result.task} has role backbone but names no audio_llm_task in its "
                         "metadata: no backbone comparison")
            continue
        llms = [c for c in _ordered(cells) if c.result.task == target and not c.config.control
                and c.config.model_key != bb.config.model_key]
        if not llms:
            notes.append(f"{bb.config.full_label} ran {bb.result.task}, but no audio LLM ran {target}: "
                         "no backbone comparison")
        for llm in llms:
            comps += _compare_all(BACKBONE, f"{llm.config.model_full_label} vs {bb.config.model_full_label}", bb, llm,
                                  settings, notes)
    return comps


def adapters(cells: Cells, settings: PairSettings, notes: list[str]) -> list[Comparison]:
    """adapter - base on the same task or the task named by `before_task`."""
    comps = []
    tasks_of: dict[ModelConfig, set[str]] = defaultdict(set)
    for config, task in cells:
        tasks_of[config].add(task)
    for config in sorted((c for c in tasks_of if c.adapter and not c.control), key=lambda c: c.sort_key):
        before_of = {t: str(cells[(config, t)].result.metadata.get("before_task") or t) for t in tasks_of[config]}
        base_tasks = tasks_of.get(config.base, set())
        lacking = sorted(base_tasks - set(before_of.values()))
        if base_tasks and lacking:
            notes.append(f"{config.base.full_label} ran {', '.join(lacking)} but {config.full_label} did not: "
                         "no before/after view for those")
        for task in sorted(tasks_of[config]):
            before = cells.get((config.base, before_of[task]))
            if before is None:
                notes.append(f"{config.full_label} ran {task} but its base ({config.base.full_label}) did not run "
                             f"{before_of[task]}: no before/after view for it")
                continue
            comps += _compare_all(ADAPTER, config.model_full_label, before, cells[(config, task)], settings, notes)
    return comps


def controls(cells: Cells, settings: PairSettings, notes: list[str]) -> list[Comparison]:
    """real - control on the same task: did the audio reach the model?"""
    comps = []
    for ctrl in _ordered(cells):
        if not ctrl.config.control:
            continue
        real = cells.get((ctrl.config.real, ctrl.result.task))
        if real is None:
            notes.append(f"control run {ctrl.config.full_label} on {ctrl.result.task} has no real run of "
                         f"the same configuration ({ctrl.config.real.full_label}): nothing to compare it with")
            continue
        comps += _compare_all(CONTROL, ctrl.config.real.full_label, ctrl, real, settings, notes)
    return comps


def _asr_family(task: str) -> str:
    return task.removesuffix("_chat")


def asr(cells: Cells, settings: PairSettings, notes: list[str]) -> list[Comparison]:
    """audio LLM - Whisper, corpus WER on the same utterances."""
    def is_asr(c: Cell) -> bool:
        return any(m in WER_METRICS for m, _ in c.result.metrics)

    comps = []
    ordered = [c for c in _ordered(cells) if is_asr(c) and not c.config.control]
    for w in (c for c in ordered if c.config.model in WHISPER_MODELS and not c.config.adapter):
        others = [c for c in ordered if c.config.model not in WHISPER_MODELS and not c.config.adapter
                  and _asr_family(c.result.task) == _asr_family(w.result.task)]
        for other in others:
            comps += _compare_all(ASR, f"{other.config.model_full_label} vs {w.config.model_full_label}", w, other, settings, notes)
    return comps
