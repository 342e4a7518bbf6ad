"""The seed study's MMLU, item for item: the embedded subset, its order, and every seed string in
what the model receives (read from --log_samples output of a real `lm_eval` run)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_audio.data import seed_mmlu

REPO = Path(__file__).resolve().parents[1]
SEED_PROTOCOL = REPO / "tests" / "data" / "SEED_PROTOCOL.md"
TASKS = ["spoken_mmlu_seed", "mmlu_seed", "mmlu_seed_backbone", "spoken_mmlu_seed_mc", "mmlu_seed_mc"]
LIMIT = 3


@pytest.fixture(scope="module")
def protocol_strings() -> set[str]:
    """Every `code span` of SEED_PROTOCOL.md, with its written `\\n` read as a newline."""
    spans = re.findall(r"`([^`\n]+)`", SEED_PROTOCOL.read_text(encoding="utf-8"))
    return {s.replace("\\n", "\n") for s in spans}


# The seed's committed clips question_0..4 (SEED_PROTOCOL.md): the only witness of its order.
SEED_CLIPS = ["nutrition/49", "high_school_macroeconomics/38", "nutrition/236", "nutrition/173",
              "high_school_macroeconomics/239"]


def _tools():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_test_data
        import seed_mmlu_order
        import x86_simd_argsort
    finally:
        sys.path.pop(0)
    return x86_simd_argsort, seed_mmlu_order, make_test_data


def _index_rows(test_data: Path) -> list[dict]:
    """The full MMLU test split as the sort sees it (tests/data's index, in `all` order): each
    row's id, a question of its length, four choices, and the digest of its real content."""
    import gzip

    rows = []
    with gzip.open(test_data / "mmlu_test_index.tsv.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            mmlu_id, length, letter, digest = line.rstrip("\n").split("\t")
            rows.append({"mmlu_id": mmlu_id, "question": "q" * int(length), "choices": ["a", "b", "c", "d"],
                         "answer_letter": letter, "digest": digest})
    return rows


def _native_lanes() -> int:
    """The vector width numpy's int64 argsort runs with here (x86-simd-sort), else skip."""
    from numpy._core._multiarray_umath import __cpu_features__ as cpu

    if cpu.get("AVX512_SKX"):
        return 8
    if cpu.get("AVX2"):
        return 4
    pytest.skip("numpy's argsort is not x86-simd-sort on this CPU")


def test_first_five_items_are_the_seed_clips():
    embedded = seed_mmlu.embedded_items()
    assert [i["mmlu_id"] for i in embedded[:5]] == SEED_CLIPS
    assert len(embedded) == 501 and embedded[0]["question"] == "IBS\n"  # stored strings, not stripped
    lengths = [len(item["question"]) for item in embedded]
    assert lengths == sorted(lengths)


def test_limit_200_is_the_analysed_set():
    """What `--limit 200` hands the model: the first 200 documents of the task's dataset."""
    ds = seed_mmlu.load_for_task()["test"]
    ids = ds["mmlu_id"]
    assert seed_mmlu.ANALYSED == 200 and ids[:5] == SEED_CLIPS
    assert ids[: seed_mmlu.ANALYSED] == [i["mmlu_id"] for i in seed_mmlu.embedded_items()[:200]]
    # The tie order reaches into the analysed 200: positions 197-229 (from 0) are 33 questions of 25 characters.
    assert {len(q) for q in ds["question"][197:230]} == {25} and len(ds["question"][196]) < 25


def test_emulated_sort_is_numpy_here():
    """The emulation against the real x86-simd-sort argsort this machine's numpy runs."""
    import numpy as np

    emulation, _, _ = _tools()
    lanes = _native_lanes()
    rng = np.random.default_rng(0)
    for n, high in [(7, 3), (200, 4), (257, 30), (1500, 6), (5000, 40), (14042, 300)]:
        keys = rng.integers(0, high, n).astype(np.int64)
        assert emulation.argsort(keys.tolist(), lanes=lanes) == np.argsort(keys, kind="quicksort").tolist()
    with pytest.raises(ValueError, match="lanes"):
        emulation.argsort([2, 1], lanes=16)


def test_shipped_order_is_the_avx512_sort(test_data):
    """The shipped file is the emulated AVX-512 pandas sort of the full test split; a stable sort is not."""
    _, order_tool, data_tool = _tools()
    rows = _index_rows(test_data)
    assert len(rows) == 14042
    embedded = seed_mmlu.embedded_items()
    assert [rows[i]["mmlu_id"] for i in order_tool.seed_order(rows)] == [i["mmlu_id"] for i in embedded]
    stable = [rows[i]["mmlu_id"] for i in order_tool.stable_order(rows)]
    assert order_tool.compare([i["mmlu_id"] for i in embedded], stable) == {
        "items_differing": 1, "items_differing_in_first_200": 2, "same_position": 28}
    # Questions, choices and answers too: the shipped items are the copy's rows, unchanged.
    digests = {r["mmlu_id"]: r["digest"] for r in rows}
    assert [data_tool.row_digest(i["question"], i["choices"], i["answer"]) for i in embedded] == [
        digests[i["mmlu_id"]] for i in embedded]


def test_seed_pandas_code_is_the_emulated_sort(test_data):
    """The seed's own pandas lines, run here, give the emulation's order for this machine's width."""
    import pandas as pd

    emulation, order_tool, _ = _tools()
    rows = _index_rows(test_data)
    df = pd.DataFrame(rows)
    # The seed's own lines: choices is a list column, so .str.len() is 4 on every row.
    df["prompt_length"] = df.question.str.len() + df.choices.str.len()
    df = df.sort_values(by="prompt_length", ignore_index=True)
    pandas_ids = list(df.loc[:500].mmlu_id)
    emulated = emulation.argsort(order_tool.seed_keys(rows), lanes=_native_lanes())[:501]
    assert pandas_ids == [rows[i]["mmlu_id"] for i in emulated]


def test_other_copy_missing_a_seed_item_is_named(tmp_path):
    rows = [dict(i) for i in seed_mmlu.embedded_items() if i["mmlu_id"] != "nutrition/236"]
    with pytest.raises(seed_mmlu.SeedItemsError, match=r"copy X lacks 1 of the seed's items, e.g. \['nutrition/236'\]"):
        seed_mmlu.select_seed_items(rows, "copy X")


def test_strings_are_the_seed_protocol(protocol_strings):
    for template in (seed_mmlu.SPOKEN_TEMPLATE, seed_mmlu.ITEM_TEMPLATE, seed_mmlu.JUDGE_TEMPLATE):
        assert template in protocol_strings
    assert seed_mmlu.BACKBONE_PREFIX in protocol_strings
    doc = {"question": "Q?\n", "choices": ["a", "b", "c", "d"], "answer": 0, "mmlu_id": "x/0"}
    assert seed_mmlu.judge_prompt(doc, "it is b").endswith(
        "\nalternatives: A. a\nB. b\nC. c\nD. d\nAnswer:\nmodel answer: it is b")


def test_bad_embedded_file_is_named(tmp_path, monkeypatch):
    bad = tmp_path / "seed.jsonl"
    bad.write_text('{"mmlu_id": "x/0"}\n')
    monkeypatch.setattr(seed_mmlu, "EMBEDDED", bad)
    with pytest.raises(seed_mmlu.SeedItemsError, match=r"seed.jsonl:1: missing \['subject', 'question'"):
        seed_mmlu.embedded_items()


def test_strict_letter_filter_is_the_seed_rule():
    from lm_eval_audio.filters.choice import UNMAPPED, StrictLetterFilter, answered_accuracy, exact_match_answered

    answers = ["B", " C", "C\n", "D ", "\tA", "B.", "The answer is A", "a", "", None]
    out = StrictLetterFilter().apply([[a] for a in answers], [{}] * len(answers))
    # Only the bare letter: the seed's CSV round trip kept white space, so " C" was unanswered.
    assert [o[0] for o in out] == ["B"] + [UNMAPPED] * (len(answers) - 1)
    items = [exact_match_answered(["B"], ["B"]), exact_match_answered(["B"], ["C"]),
             exact_match_answered(["B"], [UNMAPPED])]
    assert items == [(1, 1), (0, 1), (0, 0)] and answered_accuracy(items) == 0.5


@pytest.fixture(scope="module")
def seed_run(tiny_model_dir, tmp_path_factory, make_cli_env):
    """One real `lm_eval` run of the five seed MMLU tasks, chat template on, samples logged."""
    tmp = tmp_path_factory.mktemp("seed-run")
    env = dict(make_cli_env(tmp), LM_EVAL_AUDIO_TTS_CACHE=str(tmp / "tts"), LM_EVAL_AUDIO_TTS_BACKEND="espeak")
    env.pop("LM_EVAL_AUDIO_JUDGE", None)
    out = tmp / "out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "qwen2audio", "--model_args", f"pretrained={tiny_model_dir}",
           "--device", "cpu", "--batch_size", "4", "--tasks", ",".join(TASKS), "--limit", str(LIMIT),
           "--apply_chat_template", "--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    samples = {}
    for task in TASKS:
        (path,) = out.rglob(f"samples_{task}_20*.jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        samples[task] = sorted(rows, key=lambda s: (s["filter"], s["doc_id"]))
    (results,) = out.rglob("results_*.json")
    return json.loads(results.read_text()), samples


@pytest.mark.slow
def test_model_receives_the_seed_strings(seed_run, tiny_model_dir, protocol_strings):
    from transformers import AutoProcessor

    from lm_eval_audio.arch.prompts import PromptFormat, build_prompt

    results, all_samples = seed_run
    items = seed_mmlu.embedded_items()[:LIMIT]
    system = "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    text_system = next(s for s in protocol_strings if s.startswith("Give ONLY the letter"))
    samples = {}
    for task in TASKS:
        for filt in {s["filter"] for s in all_samples[task]}:  # the seed's order, under every filter
            assert [s["doc"]["mmlu_id"] for s in all_samples[task] if s["filter"] == filt] == [i["mmlu_id"] for i in items]
        samples[task] = [s for s in all_samples[task] if s["filter"] in ("strict", "none")]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    seed_conversation = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "audio", "audio_url": "clip.wav"}]}],
        add_generation_prompt=True, tokenize=False)
    for item, s in zip(items, samples["spoken_mmlu_seed"]):
        # The clip speaks the seed's text, and the model gets exactly the seed's conversation.
        assert s["doc"]["speech_text"] == seed_mmlu.SPOKEN_TEMPLATE.format(
            question=item["question"], **dict(zip("ABCD", item["choices"])))
        context, gen_kwargs, audio = s["arguments"]["gen_args_0"].values()
        assert build_prompt(context, 1, PromptFormat.from_processor(processor), mode="audio") == seed_conversation
        assert gen_kwargs == {"until": [], "max_gen_toks": 8, "do_sample": False}
        assert Path(audio["audio"][0]["path"]).is_file()
    for item, s in zip(items, samples["mmlu_seed"]):
        context = s["arguments"]["gen_args_0"]["arg_0"]
        # What the model reads of the logged context (the chat's audio-placement markers go).
        assert build_prompt(context, 0, PromptFormat.from_processor(processor)) == system.format(
            text_system, seed_mmlu.item_text(item))
    for item, s in zip(items, samples["mmlu_seed_backbone"]):
        context = s["arguments"]["gen_args_0"]["arg_0"]
        assert build_prompt(context, 0, PromptFormat.from_processor(processor)) == system.format(
            "You are a helpful assistant.", seed_mmlu.BACKBONE_PREFIX + seed_mmlu.item_text(item))
    for task, twin in (("spoken_mmlu_seed_mc", "spoken_mmlu_seed"), ("mmlu_seed_mc", "mmlu_seed")):
        for s, g in zip(samples[task], samples[twin]):
            args = list(s["arguments"].values())
            assert [a["arg_1"] for a in args] == ["A", "B", "C", "D"]  # the assistant's first token
            assert all(a["arg_0"] == g["arguments"]["gen_args_0"]["arg_0"] for a in args)


@pytest.mark.slow
def test_seed_metrics_are_consistent(seed_run):
    results, samples = seed_run
    for task in ("spoken_mmlu_seed", "mmlu_seed", "mmlu_seed_backbone"):
        r = results["results"][task]
        for filt in ("strict", "choice"):
            per_item = [s for s in samples[task] if s["filter"] == filt]
            assert len(per_item) == LIMIT
            answered = [s for s in per_item if s["filtered_resps"][0][0] in ("A", "B", "C", "D")]
            correct = [s for s in answered if s["filtered_resps"][0][0] == s["target"]]
            assert r[f"exact_match,{filt}"] == pytest.approx(len(correct) / LIMIT)
            assert r[f"extraction_failure,{filt}"] == pytest.approx(1 - len(answered) / LIMIT)
            if answered:
                assert r[f"exact_match_answered,{filt}"] == pytest.approx(len(correct) / len(answered))
            assert r[f"judge_rate,{filt}"] == 0.0  # the judge is off by default
        strict = {s["doc_id"]: s for s in samples[task] if s["filter"] == "strict"}
        for s in samples[task]:
            if s["filter"] == "strict":
                raw = s["resps"][0][0]
                assert s["filtered_resps"][0][0] == (raw if raw in ("A", "B", "C", "D") else "[unmapped]")
        assert len(strict) == LIMIT
