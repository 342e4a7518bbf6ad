"""The report on real lm-eval output folders.

The runs are real: the `lm_eval` CLI with `--output_path` and `--log_samples`, on the tiny
random Qwen2-Audio checkpoint (text mode on a text twin, audio mode on its spoken tasks, and a
random LoRA adapter on top), with tasks defined in tmp_path: twelve questions, each with a
generated tone as its "speech". The report must reproduce every number of those files exactly.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lm_eval_audio.report import ReportOptions, build_report, write_report
from lm_eval_audio.report.load import ResultsError, find_results_files, load_run
from lm_eval_audio.report.render import cell_text, fmt

N_DOCS = 12
TEXT_TASK, SPOKEN_TASK, SPOKEN_GEN = "mmlu_twin_toy", "spoken_mmlu_toy", "spoken_mmlu_toy_gen"

_MC = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: multiple_choice
doc_to_text: "{text}"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
{audio}
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

_GEN = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: generate_until
doc_to_text: "Answer:"
doc_to_target: "{{{{['A','B','C','D'][answer]}}}}"
doc_to_audio: audio
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 3
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def make_tasks(folder: Path) -> Path:
    """Twelve questions with a tone clip each, as a text twin, a spoken MC task and a spoken gen task."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    docs = []
    for i in range(N_DOCS):
        t = np.arange(16000) / 16000
        clip = folder / f"q{i}.wav"
        sf.write(clip, (0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t)).astype(np.float32), 16000)
        docs.append({"question": f"Question {i}: which letter is right?", "answer": int(rng.integers(4)),
                     "audio": [{"path": str(clip)}]})
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{TEXT_TASK}.yaml").write_text(
        _MC.format(name=TEXT_TASK, docs=data, text="{{question}} Answer:", audio=""))
    (folder / f"{SPOKEN_TASK}.yaml").write_text(
        _MC.format(name=SPOKEN_TASK, docs=data, text="Answer:", audio="doc_to_audio: audio"))
    (folder / f"{SPOKEN_GEN}.yaml").write_text(_GEN.format(name=SPOKEN_GEN, docs=data))
    return folder


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A random (non-zero) LoRA adapter on the language model's attention, saved with PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2AudioForConditionalGeneration

    torch.manual_seed(1)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(model_dir)
    cfg = LoraConfig(r=4, lora_alpha=16, init_lora_weights=False,
                     target_modules=r".*language_model.*\.(q_proj|v_proj)")
    get_peft_model(model, cfg).save_pretrained(out)
    return out


def run_lm_eval(out: Path, model_args: str, tasks: list[str], task_manager) -> None:
    """One lm-eval run written as `lm_eval --output_path OUT --log_samples` writes it.

    In-process rather than through the CLI: the CLI indexes all of lm-eval's ~15k task files
    on every start (about a minute here); a TaskManager restricted to our task folder is
    shared by the runs. The saving calls are the CLI's own (lm_eval/_cli/run.py).
    """
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(model="qwen2audio", model_args=model_args, tasks=tasks, device="cpu",
                              batch_size=4, log_samples=True, evaluation_tracker=tracker,
                              task_manager=task_manager)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """Three real lm-eval output folders: text twin, spoken (+gen), spoken with an adapter."""
    from lm_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("report-runs")
    tasks = make_tasks(root / "tasks")
    adapter = make_adapter(tiny_model_dir, root / "adapter")
    tm = TaskManager(include_defaults=False, include_path=str(tasks))
    base = f"pretrained={tiny_model_dir},dtype=float32"
    out = root / "out"
    run_lm_eval(out, base + ",mode=text", [TEXT_TASK], tm)
    run_lm_eval(out, base + ",mode=audio", [SPOKEN_TASK, SPOKEN_GEN], tm)
    run_lm_eval(out, base + f",mode=audio,peft={adapter}", [SPOKEN_TASK], tm)
    return out


@pytest.fixture(scope="module")
def report_dir(runs_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(build_report([runs_dir], ReportOptions(n_resamples=2000)), out)
    return out


def _results(runs_dir: Path) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted(runs_dir.rglob("results_*.json"))]


def test_csv_reproduces_every_number_of_the_results_files(runs_dir, report_dir):
    rows = list(csv.DictReader(open(report_dir / "report.csv")))
    measured = {(r["source"], r["task"], r["metric"], r["filter"]): r for r in rows if r["kind"] == "measured"}
    expected = 0
    for path, data in _results(runs_dir):
        for task, entry in data["results"].items():
            for key, value in entry.items():
                if "," not in key or "_stderr," in key:
                    continue
                metric, filt = key.split(",", 1)
                row = measured[(str(path.resolve()), task, metric, filt)]
                assert float(row["value"]) == value  # exact, not approximate
                assert float(row["stderr"]) == entry[f"{metric}_stderr,{filt}"]
                assert int(row["n"]) == data["n-samples"][task]["effective"] == N_DOCS
                expected += 1
    assert expected == len(measured) == 4  # twin acc, spoken acc, spoken gen exact_match, adapter acc


def test_rows_are_model_configurations_from_model_args(runs_dir):
    report = build_report([runs_dir], ReportOptions(n_resamples=200))
    labels = sorted((r.model, r.adapter is not None, r.mode) for r in report.rows)
    assert labels == [("qwen2audio", False, "audio"), ("qwen2audio", False, "text"), ("qwen2audio", True, "audio")]
    assert {c.task for c in report.columns} == {TEXT_TASK, SPOKEN_TASK, SPOKEN_GEN}


def test_markdown_cells_show_the_results_values(runs_dir, report_dir):
    md = (report_dir / "report.md").read_text()
    for _, data in _results(runs_dir):
        for task, entry in data["results"].items():
            metric = "acc" if "acc,none" in entry else "exact_match"
            text = f"{fmt(entry[f'{metric},none'])} ± {fmt(entry[f'{metric}_stderr,none'])} (n={N_DOCS})"
            assert text in md, (task, text)


def _per_doc(samples: Path, metric: str) -> dict[int, float]:
    return {s["doc_id"]: float(s[metric]) for s in map(json.loads, open(samples))}


def test_degradation_and_adapter_views_match_the_samples(runs_dir, report_dir):
    samples = {p.name.split("_20")[0] + "|" + p.parent.name + "|" + p.stem.rsplit("_", 1)[1]: p
               for p in runs_dir.rglob("samples_*.jsonl")}
    paired = list(csv.DictReader(open(report_dir / "paired.csv")))
    kinds = sorted((r["kind"], r["task_a"], r["task_b"]) for r in paired)
    assert kinds == [("adapter - base", SPOKEN_TASK, SPOKEN_TASK),
                     ("speech - text", TEXT_TASK, SPOKEN_TASK),
                     ("speech - text", TEXT_TASK, SPOKEN_GEN)]
    report = build_report([runs_dir], ReportOptions(n_resamples=200))
    for comp in report.comparisons:
        a = _per_doc(comp.a.result.samples_path, comp.metric_a)
        b = _per_doc(comp.b.result.samples_path, comp.metric_b)
        ids = sorted(a)
        assert ids == sorted(b) == list(range(N_DOCS))
        d = np.array([b[i] - a[i] for i in ids])
        s = comp.stats
        assert s.n == N_DOCS and s.diff == pytest.approx(d.mean(), abs=1e-12)
        assert s.a_only == int(sum(1 for i in ids if a[i] == 1 and b[i] == 0))
        assert s.b_only == int(sum(1 for i in ids if a[i] == 0 and b[i] == 1))
        assert s.ci_low <= s.diff <= s.ci_high
        row = next(r for r in paired if r["task_a"] == comp.a.result.task and r["task_b"] == comp.b.result.task
                   and r["kind"] == comp.kind)
        assert float(row["diff"]) == s.diff and int(row["a_only"]) == s.a_only
    assert samples  # the runs logged samples


def test_html_is_self_contained_with_table_and_plots(report_dir):
    page = (report_dir / "report.html").read_text()
    assert "<table" in page and SPOKEN_TASK in page and "published" in page
    imgs = page.split('src="data:image/png;base64,')[1:]
    assert len(imgs) >= 3  # scores, degradation, adapters
    for img in imgs:
        assert base64.b64decode(img.split('"', 1)[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_missing_and_mismatched_inputs_are_reported(runs_dir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    # Drop two items from the spoken run's per-sample log: the pairing must say so.
    spoken = next(p for p in copy.rglob(f"samples_{SPOKEN_TASK}_2*.jsonl")
                  if "peft" not in json.loads(p.with_name("results_" + p.stem.rsplit("_", 1)[1] + ".json")
                                              .read_text())["config"]["model_args"])
    lines = spoken.read_text().splitlines()
    spoken.write_text("\n".join(lines[2:]) + "\n")
    # And remove the gen task's samples altogether.
    for p in copy.rglob(f"samples_{SPOKEN_GEN}_*.jsonl"):
        p.unlink()
    report = build_report([copy], ReportOptions(n_resamples=200))
    notes = "\n".join(report.notes)
    assert f"compared {N_DOCS - 2} common items; 2 only in {TEXT_TASK}, 0 only in {SPOKEN_TASK}" in notes, notes
    assert f"{SPOKEN_GEN}: no per-sample log" in notes and "--log_samples" in notes, notes
    # The adapter configuration did not run the gen task its base ran, nor a text twin.
    assert f"ran {SPOKEN_GEN} but qwen2audio:" in notes and "+adapter [audio]" in notes
    assert f"ran {SPOKEN_TASK} but no text twin ({TEXT_TASK} or mmlu_toy)" in notes


def test_different_item_counts_in_a_column_are_reported(runs_dir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    results = next(p for p in copy.rglob("results_*.json")
                   if "peft" in json.loads(p.read_text())["config"]["model_args"])
    data = json.loads(results.read_text())
    data["n-samples"][SPOKEN_TASK]["effective"] = 5  # as if run with --limit 5
    results.write_text(json.dumps(data))
    notes = "\n".join(build_report([copy], ReportOptions(n_resamples=200)).notes)
    assert f"{SPOKEN_TASK}: configurations scored different numbers of items" in notes
    assert ": 5" in notes and f": {N_DOCS}" in notes


def test_published_rows_are_labelled_with_their_source(report_dir):
    rows = [r for r in csv.DictReader(open(report_dir / "report.csv")) if r["kind"] == "published"]
    assert rows and all(r["source"] for r in rows)
    md = (report_dir / "report.md").read_text()
    assert "## Published figures" in md and "arXiv:2407.10759" in md


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


def test_report_cli(runs_dir, tmp_path, cli_env):
    proc = subprocess.run([sys.executable, "-m", "lm_eval_audio.cli", "report", str(runs_dir), "-o",
                           str(tmp_path / "r"), "--bootstrap", "500"],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "r" / "report.html")
    assert {p.name for p in (tmp_path / "r").iterdir()} == {"report.md", "report.csv", "paired.csv", "report.html"}


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_html_renders_in_headless_chromium(report_dir, tmp_path):
    """The page, opened by a real browser, shows the table and the embedded plots."""
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not installed (apt-get install -y chromium)")
    import matplotlib.image as mpimg

    page = (report_dir / "report.html").as_uri()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") >= 3 and SPOKEN_TASK in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1400,2600", page],
                   capture_output=True, text=True, timeout=120, check=True)
    pixels = mpimg.imread(shot)[..., :3]
    # The score bars are drawn in #4c78a8: the browser must have decoded the embedded PNG.
    bar = np.all(np.abs(pixels - np.array([0x4C, 0x78, 0xA8]) / 255) < 0.03, axis=-1)
    assert bar.sum() > 500, "no plot pixels in the screenshot"
