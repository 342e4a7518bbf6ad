"""Held-out check: our `strict` Total / Answered against the seed notebook's pandas code.

The seed scored its spoken-MMLU answers in pandas: the raw answers went through a CSV write and
read (pandas defaults, white space kept), an answer counted only when `isin(["A", "B", "C", "D"])`,
"Total" was the accuracy over all items and "Answered" the accuracy over the answered ones.
This script recomputes both with that code and compares them with what our task reported for
the same answers:

    python tools/seed_scoring_check.py runs/.../samples_spoken_mmlu_seed_2026-...jsonl

reads an lm-eval `--log_samples` file of a seed generation task (the `strict` rows: lm-eval's
own per-item `exact_match` and `exact_match_answered`, aggregated as lm-eval does, against the
seed code on the raw `resps`), or, with `--answers FILE`, a JSONL of {"response", "target"}
rows run through our registered `strict_letter` filter and metrics. Exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

LETTERS = ["A", "B", "C", "D"]


def seed_notebook_scores(responses: list, targets: list[str]) -> dict[str, float]:
    """The seed notebook's numbers for these raw answers (percent, as it printed them)."""
    import pandas as pd

    df = pd.DataFrame({"response": responses, "answer": targets})
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    buf.seek(0)
    df = pd.read_csv(buf)
    answered = df[df.response.isin(LETTERS)]
    return {
        "total": 100 * float((df.response == df.answer).mean()),
        "answered": 100 * float((answered.response == answered.answer).mean()) if len(answered) else float("nan"),
        "answered_share": 100 * len(answered) / len(df),
    }


def _ours(per_item: list[tuple[float, tuple[int, int]]]) -> dict[str, float]:
    from lm_eval_audio.filters.choice import answered_accuracy

    return {
        "total": 100 * sum(em for em, _ in per_item) / len(per_item),
        "answered": 100 * answered_accuracy([ea for _, ea in per_item]),
        "answered_share": 100 * sum(a for _, (_, a) in per_item) / len(per_item),
    }


def ours_from_samples(rows: list[dict]) -> tuple[dict[str, float], list, list[str]]:
    """Our numbers as lm-eval logged them per item (filter `strict`), and the raw answers."""
    strict = sorted((r for r in rows if r.get("filter") == "strict"), key=lambda r: r["doc_id"])
    if not strict:
        raise SystemExit("no `strict` rows in the samples file (is it a seed generation task?)")
    per_item = [(float(r["exact_match"]), tuple(r["exact_match_answered"])) for r in strict]
    return _ours(per_item), [r["resps"][0][0] for r in strict], [r["target"] for r in strict]


def ours_from_answers(responses: list, targets: list[str]) -> dict[str, float]:
    """Our numbers for raw answers through the registered `strict_letter` filter and metrics."""
    import lm_eval.api.metrics  # noqa: F401  (registers lm-eval's own metrics, exact_match among them)
    from lm_eval.api.registry import get_filter, get_metric

    from lm_eval_audio.filters.choice import exact_match_answered
    from lm_eval_audio.registration import register_components

    register_components()  # our filters are registered when our tasks load; this tool loads none
    filtered = get_filter("strict_letter")().apply([[r] for r in responses], [{}] * len(responses))
    exact_match = get_metric("exact_match")
    per_item = []
    for (pred,), target in zip(filtered, targets):
        em = exact_match(references=[target], predictions=[pred])["exact_match"]
        per_item.append((float(em), exact_match_answered([target], [pred])))
    return _ours(per_item)


def compare(ours: dict[str, float], seed: dict[str, float]) -> bool:
    """Print both and whether they agree to 1e-9 (NaN equals NaN)."""
    same = all(abs(ours[k] - seed[k]) < 1e-9 or (ours[k] != ours[k] and seed[k] != seed[k]) for k in seed)
    for k in seed:
        print(f"{k:15s} ours {ours[k]:7.3f}   seed notebook {seed[k]:7.3f}")
    print("agree" if same else "DIFFER")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", nargs="?", help="lm-eval samples_<task>_*.jsonl of a seed generation task")
    parser.add_argument("--answers", help='JSONL of {"response": raw answer, "target": letter}')
    args = parser.parse_args(argv)
    if bool(args.samples) == bool(args.answers):
        parser.error("give a samples file or --answers, not both")
    if args.samples:
        rows = [json.loads(line) for line in Path(args.samples).read_text(encoding="utf-8").splitlines()]
        ours, responses, targets = ours_from_samples(rows)
    else:
        rows = [json.loads(line) for line in Path(args.answers).read_text(encoding="utf-8").splitlines()]
        responses, targets = [r["response"] for r in rows], [r["target"] for r in rows]
        ours = ours_from_answers(responses, targets)
    print(f"{len(responses)} answers")
    return 0 if compare(ours, seed_notebook_scores(responses, targets)) else 1


if __name__ == "__main__":
    sys.exit(main())
