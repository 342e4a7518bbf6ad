"""Read lm-eval output folders: aggregated results JSON and, when logged, per-sample JSONL.

lm-eval 0.4.13 (`lm_eval/loggers/evaluation_tracker.py`) writes, for `--output_path OUT`,
`OUT/<sanitized model name>/results_<date_id>.json` and, with `--log_samples`,
`OUT/<sanitized model name>/samples_<task>_<date_id>.jsonl` beside it (one line per document
and filter; the metric values sit at the top level of each line). When `--output_path` ends
in `.json` the files are `<stem>_<date_id>.json` and `samples_<task>_<date_id>.jsonl` in its
folder. One results file is one *run*: one model configuration on one or more tasks.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval_audio.report.model_config import ModelConfig
from lm_eval_audio.report.protocol import Protocol

logger = logging.getLogger(__name__)


class ResultsError(ValueError):
    """A results or samples file that cannot be read as lm-eval output; names the file."""


@dataclass(frozen=True)
class MetricValue:
    """One aggregated metric of one task in one run, exactly as the results file holds it."""

    metric: str
    filter: str
    value: float
    stderr: float | None  # None where lm-eval wrote "N/A" (no stderr for this aggregation)
    higher_is_better: bool | None


@dataclass
class TaskResult:
    """A task's results in one run."""

    task: str
    alias: str
    n: int | None  # documents evaluated (lm-eval's n-samples "effective", else sample_len)
    n_original: int | None  # documents in the task before --limit
    metrics: dict[tuple[str, str], MetricValue]
    metric_order: list[str]  # metric names in the task config's metric_list order
    is_group: bool
    config: dict[str, Any]
    samples_path: Path | None

    @property
    def metadata(self) -> dict[str, Any]:
        """The task config's `metadata` (item_key, text_twin, role, before_task, ...), or {}."""
        meta = self.config.get("metadata") or {}
        return meta if isinstance(meta, dict) else {}

    @property
    def output_type(self) -> str | None:
        """lm-eval's output type of the task (generate_until, multiple_choice, ...)."""
        return self.config.get("output_type")

    def primary(self) -> list[MetricValue]:
        """The task's headline metric, once per filter: the first listed metric that has a value."""
        names = self.metric_order + sorted({m for m, _ in self.metrics} - set(self.metric_order))
        for name in names:
            found = [v for (m, _), v in self.metrics.items() if m == name and not is_failure_metric(m)]
            if found:
                return found
        return []

    def failure_metrics(self, filter_key: str) -> list[MetricValue]:
        """Extraction-failure style metrics reported under the same filter."""
        return [v for (m, f), v in self.metrics.items() if f == filter_key and is_failure_metric(m)]


@dataclass
class Run:
    """One lm-eval results file: a model configuration and the tasks it ran."""

    path: Path
    date_id: str
    model_config: ModelConfig
    tasks: dict[str, TaskResult]
    limit: float | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def checks(self) -> dict[str, Any]:
        """Self-checks the model recorded in the results `config`: every `verify_batch*` entry
        (`verify_batch=N` rescoring N requests alone and recording the largest difference from
        the batched score), flattened one level, as written."""
        out: dict[str, Any] = {}
        for key, value in (self.raw.get("config") or {}).items():
            if not key.startswith(CHECK_PREFIX):
                continue
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out


CHECK_PREFIX = "verify_batch"


def is_failure_metric(metric: str) -> bool:
    """Whether a metric counts failures (e.g. answer-extraction failure rate) rather than scores.

    Recognised by name, so any task whose filter reports such a rate gets it shown beside its
    accuracy without this module knowing the task.
    """
    m = metric.lower()
    return "fail" in m or "unmapped" in m or "invalid" in m


def _float_or_none(x: Any) -> float | None:
    if x is None or isinstance(x, str):  # lm-eval writes "N/A" where it has no stderr
        return None
    v = float(x)
    return None if math.isnan(v) else v


def find_results_files(paths: list[str | Path]) -> list[Path]:
    """Every results JSON under the given files or folders (folders are searched recursively)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if p.suffix != ".json":
                raise ResultsError(f"{p}: not a results JSON file (expected lm-eval's results_<date>.json)")
            found.append(p)
        elif p.is_dir():
            hits = sorted(q for q in p.rglob("*.json") if q.name.startswith("results_"))
            if not hits:
                raise ResultsError(f"{p}: no lm-eval results_*.json file in this folder or below it")
            found.extend(hits)
        else:
            raise ResultsError(f"{p}: no such file or folder")
    # The same file named twice (a folder and a file in it) is one run.
    unique = list(dict.fromkeys(q.resolve() for q in found))
    return unique


def _date_id(path: Path) -> str:
    # results_<date_id>.json or <stem>_<date_id>.json: the date is after the last underscore.
    return path.stem.rsplit("_", 1)[-1]


def _samples_path(results_path: Path, task: str, date_id: str) -> Path | None:
    p = results_path.parent / f"samples_{task}_{date_id}.jsonl"
    return p if p.is_file() else None


def load_run(path: str | Path) -> Run:
    """Read one results JSON into a `Run`; raises `ResultsError` naming the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: cannot read as JSON: {e}") from e
    if not isinstance(data, dict) or "results" not in data or "config" not in data:
        raise ResultsError(f"{path}: not an lm-eval results file (no 'results' and 'config' keys)")
    cfg = data["config"] or {}
    if "model" not in cfg:
        raise ResultsError(f"{path}: 'config' has no 'model' entry")
    model_config = ModelConfig.from_lm_eval(cfg["model"], cfg.get("model_args"), Protocol.from_results(data))
    date_id = _date_id(path)

    groups = set(data.get("groups", {}) or {}) | set(data.get("group_subtasks", {}) or {})
    configs = data.get("configs", {}) or {}
    n_samples = data.get("n-samples", {}) or {}
    hib = data.get("higher_is_better", {}) or {}
    tasks: dict[str, TaskResult] = {}
    for task, entry in data["results"].items():
        if not isinstance(entry, dict):
            raise ResultsError(f"{path}: results entry of task {task!r} is not an object")
        metrics: dict[tuple[str, str], MetricValue] = {}
        for key, value in entry.items():
            if "," not in key or "_stderr," in key:
                continue  # name, alias, sample_len; stderr is read with its metric
            metric, filter_key = key.split(",", 1)
            if isinstance(value, str) or value is None:
                logger.warning("%s: task %s metric %s has no numeric value (%r)", path, task, key, value)
                continue
            if isinstance(value, (list, dict)):
                raise ResultsError(f"{path}: task {task!r} metric {key!r} is not a number: {value!r}")
            metrics[(metric, filter_key)] = MetricValue(
                metric=metric, filter=filter_key, value=float(value),
                stderr=_float_or_none(entry.get(f"{metric}_stderr,{filter_key}")),
                higher_is_better=(hib.get(task) or {}).get(metric),
            )
        tcfg = configs.get(task, {}) or {}
        order = [m["metric"] for m in tcfg.get("metric_list", []) or [] if isinstance(m, dict) and "metric" in m]
        ns = n_samples.get(task) or {}
        n = ns.get("effective", entry.get("sample_len"))
        tasks[task] = TaskResult(
            task=task, alias=str(entry.get("alias", task)).strip(" -"),
            n=int(n) if n is not None else None,
            n_original=int(ns["original"]) if ns.get("original") is not None else None,
            metrics=metrics, metric_order=order, is_group=task in groups, config=tcfg,
            samples_path=_samples_path(path, task, date_id),
        )
    return Run(path=path, date_id=date_id, model_config=model_config, tasks=tasks,
               limit=cfg.get("limit"), raw=data)
