"""The seed study's MMLU order, recomputed on any machine, and the shipped item file written from it.

The seed sorted `cais/mmlu` (`all`, `test`) with pandas' default `sort_values` by question length
and kept `.loc[:500]`. pandas' default sort is numpy's quicksort, which on an x86-64 machine with
AVX-512 runs x86-simd-sort's vectorised argsort: an unstable sort whose tie order follows the
vector width. The seed's committed clips (`question_0..4`: nutrition/49,
high_school_macroeconomics/38, nutrition/236, nutrition/173, high_school_macroeconomics/239) are
that AVX-512 order; this machine's numpy may give another one, so the order is computed with the
emulation in `x86_simd_argsort.py` (lanes=8), checked against those clips, and written as data.

    python tools/seed_mmlu_order.py --mmlu-path ../shared/data/mmlu            # check and report
    python tools/seed_mmlu_order.py --mmlu-path ../shared/data/mmlu --write    # rewrite the shipped file

The report compares the order with a stable sort (ties in `all`-config order) and with this
machine's own `numpy.argsort(kind="quicksort")`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import x86_simd_argsort  # noqa: E402

from lm_eval_audio.data import seed_mmlu  # noqa: E402

# What the seed's own clips say (its repository, commit 5e90a3d, data/audios/question_0..4).
SEED_CLIPS = ("nutrition/49", "high_school_macroeconomics/38", "nutrition/236", "nutrition/173",
              "high_school_macroeconomics/239")


def seed_keys(rows: list[dict]) -> list[int]:
    """The seed's sort key: `question.str.len() + choices.str.len()` (the list's length, 4)."""
    return [len(r["question"]) + len(r["choices"]) for r in rows]


def seed_order(rows: list[dict]) -> list[int]:
    """Row numbers of the seed's 501 items, in its order (pandas' sort on an AVX-512 machine)."""
    return x86_simd_argsort.argsort(seed_keys(rows), lanes=8)[: seed_mmlu.SEED_SIZE]


def stable_order(rows: list[dict]) -> list[int]:
    """What a stable sort gives: ties in `all`-config order."""
    keys = seed_keys(rows)
    return sorted(range(len(rows)), key=lambda i: (keys[i], i))[: seed_mmlu.SEED_SIZE]


def compare(ours: list[str], other: list[str]) -> dict:
    """How far another order is from the seed's: item sets and positions."""
    n = seed_mmlu.ANALYSED
    return {
        "items_differing": len(set(ours) - set(other)),
        f"items_differing_in_first_{n}": len(set(ours[:n]) - set(other[:n])),
        "same_position": sum(a == b for a, b in zip(ours, other)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmlu-path", required=True, help="MMLU CSV folder (test/*_test.csv) or hub id")
    parser.add_argument("--write", action="store_true", help=f"rewrite {seed_mmlu.EMBEDDED}")
    args = parser.parse_args(argv)

    import numpy as np

    from lm_eval_audio.data.mmlu import load_mmlu

    rows = load_mmlu("all", args.mmlu_path)["test"].to_list()
    order = seed_order(rows)
    ids = [rows[i]["mmlu_id"] for i in order]
    if tuple(ids[:5]) != SEED_CLIPS:
        print(f"the emulated order starts {ids[:5]}, the seed's clips {list(SEED_CLIPS)}", file=sys.stderr)
        return 1
    here = np.argsort(np.asarray(seed_keys(rows), dtype=np.int64), kind="quicksort")[: seed_mmlu.SEED_SIZE]
    report = {
        "items": len(ids),
        "first_five": ids[:5],
        "stable_sort": compare(ids, [rows[i]["mmlu_id"] for i in stable_order(rows)]),
        "this_machine_numpy": compare(ids, [rows[i]["mmlu_id"] for i in here]),
    }
    print(json.dumps(report, indent=1))
    if args.write:
        body = "".join(json.dumps({k: rows[i][k] for k in seed_mmlu.FIELDS}, ensure_ascii=False) + "\n"
                       for i in order)
        seed_mmlu.EMBEDDED.write_text(body, encoding="utf-8")
        print(f"wrote {seed_mmlu.EMBEDDED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
