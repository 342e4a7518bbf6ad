"""The seed's scoring rules under their names: the strict letter rule against the seed notebook's
pandas code (held-out check), the lenient variant beside it, which answers the seed's judge never
saw, and the seed's agreement denominator on a worked example."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_audio.filters.choice import UNMAPPED, LenientLetterFilter
from lm_eval_audio.filters.judge import seed_missing
from lm_eval_audio.report.seed import agreement_counts

REPO = Path(__file__).resolve().parents[1]


def _answers(n: int = 200, seed: int = 7) -> list[dict]:
    """`n` raw answers in the forms audio LLMs give to "answer only with the letter" (seeded)."""
    rng = random.Random(seed)
    forms = [("{}", 10), (" {}", 2), ("{}\n", 2), ("{} ", 1), ("{}.", 2), ("{}. {text}", 2),
             ("The answer is {}.", 2), ("({})", 1), ("{lower}", 1), ("", 1), ("I cannot hear the question.", 1)]
    out = []
    for _ in range(n):
        target = rng.choice("ABCD")
        letter = target if rng.random() < 0.35 else rng.choice("ABCD")
        form = rng.choices([f for f, _ in forms], [w for _, w in forms])[0]
        out.append({"response": form.format(letter, text="an option", lower=letter.lower()), "target": target})
    return out


def _tool(name: str):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_held_out_strict_total_and_answered_are_the_seed_notebooks(tmp_path):
    check = _tool("seed_scoring_check")
    rows = _answers()
    responses, targets = [r["response"] for r in rows], [r["target"] for r in rows]
    ours = check.ours_from_answers(responses, targets)
    seed = check.seed_notebook_scores(responses, targets)
    assert ours == pytest.approx(seed)
    # Not vacuous: white-space variants are there, and stripping them would change the figures.
    assert sum(r != r.strip() and r.strip() in "ABCD" for r in responses) >= 20
    lenient = sum(f[0] == t for f, t in zip(LenientLetterFilter().apply([[r] for r in responses], [{}] * 200),
                                               targets)) / 2
    assert lenient > ours["total"]
    # The command prints both and exits 0 when they agree.
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "seed_scoring_check.py"), "--answers", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "agree" in proc.stdout, proc.stdout + proc.stderr


def test_lenient_letter_strips_and_is_registered():
    from lm_eval.api.registry import get_filter

    from lm_eval_audio.registration import register_components

    register_components()  # what our tasks' utils.py and our models do as they load
    out = LenientLetterFilter().apply([[" C"], ["C\n"], ["B."], [None]], [{}] * 4)
    assert [o[0] for o in out] == ["C", "C", UNMAPPED, UNMAPPED]
    assert get_filter("lenient_letter") is LenientLetterFilter


def test_seed_judge_never_saw_empty_or_missing_answers():
    answers = ["", "A", " ", "C\n", "NA", "None", "null", None, "The answer is N/A", "n/a"]
    assert seed_missing(answers) == [True, False, False, False, True, True, True, True, False, True]
    assert seed_missing([]) == []


def test_agreement_on_a_worked_example():
    # (backbone letter or None = unanswered, audio-LLM letter or None, backbone right, audio LLM right)
    items = [("A", "A", True, True),   # same
             ("B", "C", False, True),  # both answered, different
             ("C", None, True, False),  # audio LLM unanswered: a disagreement for the seed
             ("D", "D", False, False),  # same
             (None, "A", False, True),  # backbone unanswered: outside both denominators
             (None, None, False, False)]
    backbone, both, same, both_right = agreement_counts(items)
    assert (backbone, both, same, both_right) == (4, 3, 2, 1)
    assert same / backbone == 0.5  # the seed's agreement
    assert same / both == pytest.approx(2 / 3)  # over both answered, beside it
