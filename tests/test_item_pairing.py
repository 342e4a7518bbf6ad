"""Two runs' items pair only by item identity: never by document position across two tasks."""

from __future__ import annotations

import json
from pathlib import Path

from lm_eval_audio.report.items import DOC_ID, pair_items
from lm_eval_audio.report.load import TaskResult

LETTERS = "ABCD"


def _hash(doc: dict) -> str:
    return "h-" + json.dumps(doc, sort_keys=True)


def _run(tmp_path: Path, name: str, task: str, docs: list[dict], *, item_key: str | None = None,
         hashes: list[str] | None = None, twin_of: str | None = None) -> TaskResult:
    """A task result whose samples log holds `docs` in order (doc_id = position), target `answer`."""
    samples = tmp_path / f"samples_{name}.jsonl"
    hashes = hashes or [_hash(d) for d in docs]
    with open(samples, "w") as f:
        for i, (doc, doc_hash) in enumerate(zip(docs, hashes)):
            f.write(json.dumps({"doc_id": i, "doc": doc, "target": doc["answer"], "filter": "none",
                                "doc_hash": doc_hash, "filtered_resps": [doc["answer"]], "exact_match": 1.0}) + "\n")
    meta = {}
    if item_key:
        meta["item_key"] = item_key
    if twin_of:
        meta["spoken_twin"] = {"task": twin_of}
    return TaskResult(task=task, alias=task, n=len(docs), n_original=len(docs), metrics={}, metric_order=[],
                      is_group=False, config={"metadata": meta, "output_type": "generate_until"},
                      samples_path=samples)


def _questions(n: int = 40, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    return [{"qid": f"q{i}", "question": f"question {i}", "answer": rng.choice(LETTERS)} for i in range(n)]


def test_two_tasks_without_item_keys_are_not_paired(tmp_path):
    # The spoken run holds the questions in another order; by doc_id a quarter of its targets
    # would still equal the text run's by chance, and those different questions would pair.
    text = _questions()
    spoken = list(reversed(text))
    assert sum(t["answer"] == s["answer"] for t, s in zip(text, spoken)) >= 5  # the chance agreement
    a = _run(tmp_path, "a", "mmlu_text", [{k: v for k, v in d.items() if k != "qid"} for d in text])
    b = _run(tmp_path, "b", "mmlu_spoken", [{k: v for k, v in d.items() if k != "qid"} for d in spoken])
    _, _, pairing = pair_items(a, "none", b, "none")
    assert pairing.common == [] and pairing.no_identity == (
        "not paired: mmlu_text declares no item_key in its metadata; the items of two tasks pair only by an "
        "item identity both declare (metadata item_key), never by document position (doc_id)")


def test_item_keys_that_differ_or_are_missing_give_no_pairing(tmp_path):
    text, spoken = _questions(), list(reversed(_questions()))
    a = _run(tmp_path, "a", "mmlu_text", text, item_key="qid")
    b = _run(tmp_path, "b", "mmlu_spoken", spoken, item_key="mmlu_id")
    _, _, pairing = pair_items(a, "none", b, "none")
    assert pairing.common == [] and pairing.no_identity.startswith(
        "not paired: mmlu_text names item_key 'qid' and mmlu_spoken names 'mmlu_id'")
    lacking = [dict(d) for d in spoken]
    lacking[3].pop("qid")
    b = _run(tmp_path, "c", "mmlu_spoken", lacking, item_key="qid")
    _, _, pairing = pair_items(a, "none", b, "none")
    assert pairing.common == [] and pairing.no_identity.startswith(
        "not paired: 1 of 40 documents of mmlu_spoken have no 'qid' field")


def test_item_keys_pair_across_orders(tmp_path):
    text, spoken = _questions(), list(reversed(_questions()))
    a = _run(tmp_path, "a", "mmlu_text", text, item_key="qid")
    b = _run(tmp_path, "b", "mmlu_spoken", spoken, item_key="qid")
    ia, ib, pairing = pair_items(a, "none", b, "none")
    assert pairing.no_identity is None and len(pairing.common) == 40
    assert all(ia.by_key[k].doc["question"] == ib.by_key[k].doc["question"] for k in pairing.common)


def test_one_task_without_item_key_pairs_by_document_content(tmp_path):
    # Two runs of one task: a document is the same item where its content hash is the same.
    docs = _questions()
    a = _run(tmp_path, "a", "mmlu_text", docs)
    hashes = [_hash(d) for d in docs]
    hashes[5] = "h-other"  # the task changed this document between the runs
    b = _run(tmp_path, "b", "mmlu_text", docs, hashes=hashes)
    _, _, pairing = pair_items(a, "none", b, "none")
    assert pairing.no_identity is None and pairing.key == DOC_ID
    assert pairing.mismatched == ["5"] and len(pairing.common) == 39
    assert pairing.note == ("paired by doc_id where the document content (doc_hash) is the same "
                            "(mmlu_text declares no item_key in its metadata)")


def test_a_spoken_twin_pairs_with_its_original_by_document(tmp_path):
    docs = _questions()
    a = _run(tmp_path, "a", "mmlu_text", docs)
    b = _run(tmp_path, "b", "mmlu_text_spoken", docs, twin_of="mmlu_text")
    _, _, pairing = pair_items(a, "none", b, "none")
    assert pairing.no_identity is None and pairing.key == "doc_id of mmlu_text" and len(pairing.common) == 40
