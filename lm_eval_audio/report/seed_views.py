"""The seed's two other views: the timbre label distribution (the majority-class baseline beside
the model's accuracy) and the training loss curve of every adapter the report scores.

Labels come from the per-sample logs (each item's target), the accuracy from the results file
(`exact_match` under the seed's `strict` filter where the task reports it). The loss curves come
from the results too: a run that scores an adapter records its trainer state (`peft_training`,
`lm_eval_audio.trust.training`), the step it was taken at, and its training run's whole loss log.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from lm_eval_audio.report.items import records
from lm_eval_audio.report.load import ResultsError, Run

logger = logging.getLogger(__name__)

LABEL_TASK_PREFIX = "timbre_range"  # classification tasks whose label balance the seed showed
ACCURACY = "exact_match"
PREFERRED_FILTER = "strict"  # the seed's scoring of the timbre answers


@dataclass(frozen=True)
class LabelDistribution:
    """The labels of the items one run scored on one task, and the model's accuracy on them."""

    run: Run
    task: str
    split: str | None
    counts: dict[str, int]
    accuracy: float | None
    accuracy_filter: str | None
    problem: str | None = None

    @property
    def n(self) -> int:
        """Items counted."""
        return sum(self.counts.values())

    @property
    def majority(self) -> tuple[str, float] | None:
        """The most frequent label and its share: the accuracy of always answering it."""
        if not self.counts:
            return None
        label, count = max(sorted(self.counts.items()), key=lambda kv: kv[1])
        return label, count / self.n


def label_distributions(runs: list[Run]) -> list[LabelDistribution]:
    """One distribution per (run, timbre task) that logged its samples (a note where it did not)."""
    out = []
    for run in sorted(runs, key=lambda r: (r.model_config.sort_key, r.date_id)):
        for task, result in sorted(run.tasks.items()):
            if not task.startswith(LABEL_TASK_PREFIX) or result.is_group:
                continue
            filters = sorted({f for (m, f) in result.metrics if m == ACCURACY})
            filt = PREFERRED_FILTER if PREFERRED_FILTER in filters else (filters[0] if filters else None)
            accuracy = result.metrics[(ACCURACY, filt)].value if filt else None
            split = result.metadata.get("evaluation_split")
            if result.samples_path is None:
                out.append(LabelDistribution(run, task, split, {}, accuracy, filt,
                                             problem="no per-sample log (rerun with --log_samples)"))
                continue
            try:
                recs = records(result.samples_path, filt or "none")
            except ResultsError as e:
                out.append(LabelDistribution(run, task, split, {}, accuracy, filt, problem=str(e)))
                continue
            counts = Counter(r.target.strip() for r in recs)
            out.append(LabelDistribution(run, task, split, dict(sorted(counts.items())), accuracy, filt))
    return out


@dataclass(frozen=True)
class AdapterTraining:
    """How an adapter a run scored was trained: its step, the run's length and loss log."""

    run: Run
    adapter: str
    step: int | None
    epoch: float | None
    run_steps: int | None  # steps of the whole training run (its final step, else its planned steps)
    loss_log: list[tuple[int, float]] = field(default_factory=list)  # the run's log where known, else the adapter's

    @property
    def final_loss(self) -> float | None:
        """The last logged loss at or before the scored step."""
        before = [loss for step, loss in self.loss_log if self.step is None or step <= self.step]
        return before[-1] if before else None


def adapter_trainings(runs: list[Run]) -> list[AdapterTraining]:
    """One entry per distinct adapter a run scored and recorded a trainer state for."""
    seen: dict[str, AdapterTraining] = {}
    for run in sorted(runs, key=lambda r: r.date_id):
        record = (run.raw.get("config") or {}).get("peft_training")
        adapter = run.model_config.adapter
        if not adapter or not isinstance(record, dict):
            continue
        whole = record.get("run") if isinstance(record.get("run"), dict) else None
        log = (whole or record).get("loss_log") or []
        seen[adapter] = AdapterTraining(
            run=run, adapter=adapter, step=record.get("step"), epoch=record.get("epoch"),
            run_steps=(whole or {}).get("step") or record.get("max_steps"),
            loss_log=[(int(s), float(v)) for s, v in log])
    return list(seen.values())
