"""Spoken twins (`lm-eval-audio speak`): local tasks of each output type, one with filters, a
group and a tag, turned into twins that load through lm-eval, run on the tiny Qwen2-Audio in
`auto` and `audio` modes, synthesise once, and pair with their originals item by item in the
report; and lm-eval's own `arc_easy` configuration turned into its twin over a local copy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from lm_eval_audio.audio import TRANSCRIPT

BASE_CLIP = "<|audio_bos|><|AUDIO|><|audio_eos|>"
QA = [
    {"id": "q0", "question": "What colour is the sky on a clear day?", "choices": ["blue", "green", "red"], "answer": 0},
    {"id": "q1", "question": "How many legs does a spider have?", "choices": ["six", "eight", "ten"], "answer": 1},
    {"id": "q2", "question": "Which animal says moo?", "choices": ["dog", "cat", "cow"], "answer": 2},
]
SHORT = [("c0", "What is two plus two?", "four"), ("c1", "What is the capital of France?", "Paris"),
         ("c2", "What do bees make?", "honey")]
INSTRUCTION = "Answer with one word."

TASKS = {
    # multiple_choice, json data, in a tag; few-shot examples come from its own split
    "qa_mc.yaml": """\
task: qa_mc
tag: qa_tasks
dataset_path: json
dataset_kwargs: {{data_files: {{test: {jsonl}}}}}
test_split: test
fewshot_split: test
fewshot_config: {{sampler: first_n}}
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata: {{version: 1.0}}
""",
    # generate_until with filters, csv data, its own item id
    "qa_gen.yaml": """\
task: qa_gen
dataset_path: csv
dataset_kwargs: {{data_files: {{test: {csv}}}}}
test_split: test
output_type: generate_until
doc_to_text: "{instruction}\\n\\nQuestion: {{{{question}}}}\\nAnswer:"
doc_to_target: answer
generation_kwargs: {{until: ["\\n"], max_gen_toks: 4, do_sample: false}}
filter_list:
  - name: first_word
    filter:
      - function: regex
        regex_pattern: "(\\\\w+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
metadata: {{version: 2.0, item_key: id}}
""",
    # loglikelihood, csv data
    "qa_ll.yaml": """\
task: qa_ll
dataset_path: csv
dataset_kwargs: {{data_files: {{test: {csv}}}}}
test_split: test
output_type: loglikelihood
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: " {{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    # a group: a tag and a task entry with an override
    "qa_group.yaml": """\
group: qa_all
task:
  - qa_tasks
  - task: qa_ll
    num_fewshot: 0
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
metadata: {{version: 1}}
""",
    "qa_rolling.yaml": """\
task: qa_rolling
dataset_path: csv
dataset_kwargs: {{data_files: {{test: {csv}}}}}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{question}}}}"
""",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A fresh clip cache for the module; synthesis on (the speak command makes the clips)."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("clips")
    mp.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(cache))
    mp.setenv("LM_EVAL_AUDIO_SYNTH", "1")
    mp.delenv("LM_EVAL_AUDIO_TTS_BACKEND", raising=False)
    mp.delenv("LM_EVAL_AUDIO_TTS_VOICE", raising=False)
    yield {"cache": cache, "mp": mp}
    mp.undo()


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("local_tasks")
    jsonl, csv = folder / "qa.jsonl", folder / "qa.csv"
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in QA))
    csv.write_text("id,question,answer\n" + "".join(f"{i},{q},{a}\n" for i, q, a in SHORT))
    for name, text in TASKS.items():
        (folder / name).write_text(text.format(jsonl=jsonl, csv=csv, instruction=INSTRUCTION))
    return folder


def speak(*args: str) -> int:
    from lm_eval_audio.cli import main

    return main(["speak", *args])


@pytest.fixture(scope="module")
def twins(src, env) -> Path:
    """`lm-eval-audio speak qa_all qa_gen` into a folder under the local tasks (one --include_path
    then holds the originals and their twins), and a question-only twin of qa_gen beside it."""
    out = src / "spoken"
    assert speak("qa_all", "qa_gen", "--output", str(out), "--include_path", str(src)) == 0
    assert speak("qa_gen", "--output", str(out), "--include_path", str(src), "--speak", "question",
                 "--prefix", "spokenq_") == 0
    return out


def clips(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*.flac")}


def manager(*paths):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(p) for p in paths], include_defaults=False)


PAIRS = {"spoken_qa_mc": "qa_mc", "spoken_qa_ll": "qa_ll", "spoken_qa_gen": "qa_gen", "spokenq_qa_gen": "qa_gen"}


def test_twins_include_the_original_configuration_unchanged(src, twins):
    tm = manager(src)
    loaded = tm.load(["spoken_qa_all", "qa_all", "spoken_qa_gen", "spokenq_qa_gen", "qa_gen"])
    tasks = loaded["tasks"]
    for twin, original in PAIRS.items():
        a, b = tasks[twin].config.to_dict(), tasks[original].config.to_dict()
        for cfg in (a, b):
            cfg.pop("task")
            cfg.pop("doc_to_audio", None)
        meta_a, meta_b = a.pop("metadata"), b.pop("metadata")
        assert a == b, twin  # data, splits, prompt, choices, filters, metrics, generation settings
        assert {k: v for k, v in meta_a.items() if k in meta_b and k != "config_source"} == \
            {k: v for k, v in meta_b.items() if k != "config_source"}
        assert meta_a["text_twin"] == original and meta_a["spoken_twin"]["task"] == original
        assert tasks[twin].config.doc_to_audio is not None and tasks[original].config.doc_to_audio is None
    assert meta_a["spoken_twin"] == {"task": "qa_gen", "speak": "question", "question_field": "question"}
    # the group: the twins of its members (the tag's and the overridden entry), its aggregation kept
    group, original = loaded["groups"]["spoken_qa_all"], loaded["groups"]["qa_all"]
    assert sorted(t.task_name for t in group.get_all_tasks()) == ["spoken_qa_ll", "spoken_qa_mc"]
    assert group.aggregate_metric_list == original.aggregate_metric_list
    # the YAML says what is spoken, and that few-shot examples stay text
    mc = (twins / "spoken_qa_mc.yaml").read_text()
    assert "Spoken: the context" in mc and "answer choices stay text" in mc
    assert "Few-shot examples stay text" in mc and "by document id" in mc
    assert f"include: {src / 'qa_mc.yaml'}" in mc
    gen = (twins / "spokenq_qa_gen.yaml").read_text()
    assert "only the document's `question` field" in gen and "by their `id` field" in gen
    assert yaml.safe_load((twins / "spoken_qa_all.yaml").read_text())["task"] == [
        "spoken_qa_tasks", {"task": "spoken_qa_ll", "num_fewshot": 0}]


def test_speak_synthesises_each_clip_once(src, twins, env, caplog):
    made = clips(env["cache"])
    assert len(made) == 3 * 3 + 3  # three documents of qa_mc, qa_ll, qa_gen; qa_gen's questions alone
    caplog.set_level(logging.INFO, logger="lm_eval_audio")
    assert speak("qa_all", "qa_gen", "--output", str(twins), "--include_path", str(src)) == 0
    assert "synth done: made 0, reused 9, failed 0" in caplog.text
    assert clips(env["cache"]) == made  # nothing rewritten


@pytest.fixture(scope="module")
def prompts():
    """Every prompt the model layer builds while the fixture is active: (task, doc_id, prompt, clips)."""
    from lm_eval_audio.models import hf_audio

    seen: list[tuple] = []
    original = hf_audio.prepare

    def recording(lm, requests, fmt, **kwargs):
        out = original(lm, requests, fmt, **kwargs)
        for r in out:
            seen.append((r.task, requests[r.index].doc_id, r.prompt, r.clips))
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(hf_audio, "prepare", recording)
    yield seen
    mp.undo()


def evaluate(tiny_model_dir, src, out: Path | None, tasks, mode, **kwargs) -> dict:
    """One in-process lm-eval run (the CLI would index every built-in task first), saved as
    `lm_eval --output_path OUT --log_samples` saves it when `out` is given."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    model_args = f"pretrained={tiny_model_dir},mode={mode}" + "".join(f",{k}={v}" for k, v in
                                                                    kwargs.pop("model_args", {}).items())
    tracker = EvaluationTracker(output_path=str(out)) if out else None
    results = simple_evaluate(model="qwen2audio", model_args=model_args, tasks=tasks, device="cpu", limit=3,
                              task_manager=manager(src), log_samples=out is not None,
                              evaluation_tracker=tracker, **kwargs)
    if out:
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    return results


@pytest.fixture(scope="module")
def runs(tiny_model_dir, src, twins, env, prompts, tmp_path_factory):
    """The twins under mode=audio and their originals (text) on the same tiny model, logged;
    synthesis off from here on: a clip missing from the cache would be an error."""
    env["mp"].setenv("LM_EVAL_AUDIO_SYNTH", "0")
    out = tmp_path_factory.mktemp("runs")
    start = len(prompts)
    audio = evaluate(tiny_model_dir, src, out / "speech", ["spoken_qa_all", "spoken_qa_gen"], "audio")
    audio_prompts = prompts[start:]
    text = evaluate(tiny_model_dir, src, out / "text", ["qa_all", "qa_gen"], "auto")
    return {"out": out, "audio": audio, "text": text, "audio_prompts": audio_prompts}


def test_mode_audio_removes_the_spoken_part_only(runs, src, env):
    seen = {}
    for task, doc_id, prompt, clip_list in runs["audio_prompts"]:
        (clip,) = clip_list
        original = PAIRS[task]
        question = QA[doc_id]["question"] if original == "qa_mc" else SHORT[doc_id][1]
        assert question in clip[TRANSCRIPT] and question not in prompt
        # the whole prompt is spoken: the model receives its clip and nothing of the prompt's text
        assert prompt == BASE_CLIP, (task, prompt)
        seen.setdefault(task, set()).add(doc_id)
    assert seen == {t: {0, 1, 2} for t in ("spoken_qa_mc", "spoken_qa_ll", "spoken_qa_gen")}
    assert clips(env["cache"])  # the run found every clip in the cache (synthesis was off)
    proto = runs["audio"]["configs"]["spoken_qa_mc"]["metadata"]["protocol"]
    assert proto["tts"]["backend"] == "espeak" and proto["spoken_twin"] == {"task": "qa_mc", "speak": "prompt"}
    assert proto["items_scored"] == 3 and proto["source"]["dataset_path"] == "json"
    assert runs["audio"]["config"]["truncated_clips"] == 0
    for task in ("spoken_qa_mc", "spoken_qa_ll", "spoken_qa_gen", "spoken_qa_all"):
        assert task in runs["audio"]["results"]
    assert "exact_match,first_word" in runs["audio"]["results"]["spoken_qa_gen"]  # the original's filter


def test_question_twin_keeps_the_instruction_as_text_in_chat(tiny_model_dir, src, twins, env, prompts):
    env["mp"].setenv("LM_EVAL_AUDIO_SYNTH", "0")
    start = len(prompts)
    evaluate(tiny_model_dir, src, None, ["spokenq_qa_gen"], "audio", apply_chat_template=True)
    got = prompts[start:]
    assert len(got) == 3
    for _, doc_id, prompt, (clip,) in got:
        question = SHORT[doc_id][1]
        assert clip[TRANSCRIPT] == question and question not in prompt
        # the clip stands where the question stood, inside the user turn the chat template rendered
        assert f"{INSTRUCTION}\n\nQuestion: Audio 1: {BASE_CLIP}\n\nAnswer:" in prompt, prompt
        assert prompt.count(BASE_CLIP) == 1 and "<|im_start|>user" in prompt


def test_mode_auto_hears_and_reads_and_counts_long_clips(tiny_model_dir, src, twins, env, prompts):
    env["mp"].setenv("LM_EVAL_AUDIO_SYNTH", "0")
    start = len(prompts)
    limit = 1.5
    results = evaluate(tiny_model_dir, src, None, ["spoken_qa_mc", "spoken_qa_gen"], "auto",
                       model_args={"max_audio_seconds": limit})
    got = prompts[start:]
    longer = set()
    for _, _, prompt, (clip,) in got:
        assert prompt == BASE_CLIP + clip[TRANSCRIPT]  # clip first, then the original's text
        if sf.info(clip["path"]).duration > limit:
            longer.add(clip["sha256"])
    assert len({(task, doc_id) for task, doc_id, _, _ in got}) == 6 and longer
    assert results["config"]["truncated_clips"] == len(longer)  # counted and truncated, as for any clip


def test_fewshot_examples_stay_text(tiny_model_dir, src, twins, env, prompts):
    env["mp"].setenv("LM_EVAL_AUDIO_SYNTH", "0")
    start = len(prompts)
    evaluate(tiny_model_dir, src, None, ["spoken_qa_mc"], "audio", num_fewshot=1)
    got = prompts[start:]
    assert {doc_id for _, doc_id, _, _ in got} == {0, 1, 2}
    for _, doc_id, prompt, _ in got:
        example = QA[0] if doc_id else QA[1]  # first_n from the same split, the document itself left out
        assert prompt == f"Question: {example['question']}\nAnswer: {example['choices'][example['answer']]}\n\n{BASE_CLIP}"


def test_report_pairs_twins_with_originals_by_item(runs, tmp_path):
    from lm_eval_audio.report import ReportOptions, build_report
    from lm_eval_audio.report.views import DEGRADATION

    report = build_report([runs["out"]], ReportOptions(n_resamples=200))
    comps = {c.b.result.task: c for c in report.comparisons if c.kind == DEGRADATION}
    assert set(comps) == {"spoken_qa_mc", "spoken_qa_ll", "spoken_qa_gen"}
    for twin, c in comps.items():
        assert c.a.result.task == PAIRS[twin] and c.problem is None and c.pairing_note is None
        assert c.stats.n == 3 and c.n_mismatched == 0 and c.n_only_a == c.n_only_b == 0
        a = runs["text"]["results"][c.a.result.task][f"{c.metric_a},{c.filter_a}"]
        b = runs["audio"]["results"][twin][f"{c.metric_b},{c.filter_b}"]
        assert c.stats.diff == pytest.approx(b - a)  # speech - text, over the paired items
        assert c.stats.ci_low <= c.stats.diff <= c.stats.ci_high
    assert comps["spoken_qa_mc"].item_key == "doc_id of qa_mc"
    assert comps["spoken_qa_gen"].item_key == "id"  # the original's own id field
    # a document that differs between the twin and its original is not the same item
    text = next((runs["out"] / "text").rglob("samples_qa_mc_*.jsonl"))
    lines = [json.loads(x) for x in text.read_text().splitlines()]
    lines[1]["doc_hash"] = "0" * 64
    copy = tmp_path / "runs"
    for p in runs["out"].rglob("*.json*"):
        target = copy / p.relative_to(runs["out"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(x) + "\n" for x in lines) if p == text else p.read_text())
    changed = build_report([copy], ReportOptions(n_resamples=200))
    (c,) = [c for c in changed.comparisons if c.b.result.task == "spoken_qa_mc"]
    assert c.stats.n == 2 and c.n_mismatched == 1


def test_builtin_arc_easy_twin_over_a_local_copy(tmp_path, env):
    import lm_eval

    env["mp"].setenv("LM_EVAL_AUDIO_SYNTH", "1")

    from lm_eval_audio.twin.cli import plan, write

    arc = Path(lm_eval.__file__).parent / "tasks" / "arc"
    out = tmp_path / "twins"
    write(plan(["arc_easy"], out, include_path=str(arc)), out)
    twin = (out / "spoken_arc_easy.yaml").read_text()
    assert f"include: {arc / 'arc_easy.yaml'}" in twin and "tag:\n- spoken_ai2_arc" in twin
    # the data: a local copy in ARC's layout, put in place of the hub dataset
    docs = [{"id": f"Local_{i}", "question": q, "choices": {"text": ["a rock", "the sun", "a cloud", "ice"],
                                                            "label": ["A", "B", "C", "D"]}, "answerKey": k}
            for i, (q, k) in enumerate([("Which of these gives off light?", "B"), ("What is frozen water?", "D")])]
    data = tmp_path / "arc.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    local = tmp_path / "local"
    local.mkdir()
    (local / "spoken_arc_easy_local.yaml").write_text(yaml.safe_dump({
        "include": str(out / "spoken_arc_easy.yaml"), "task": "spoken_arc_easy_local",
        "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": {s: str(data) for s in ("train", "validation", "test")}}}))
    from lm_eval.api.task import TaskConfig
    from lm_eval.tasks._yaml_loader import load_yaml

    task = manager(local).load("spoken_arc_easy_local")["tasks"]["spoken_arc_easy_local"]
    raw = load_yaml(arc / "arc_easy.yaml")
    raw.pop("tag")
    original = TaskConfig(**raw).to_dict()  # the built-in's configuration (its data is on the hub)
    cfg = task.config.to_dict()
    for key in ("task", "doc_to_audio", "metadata", "dataset_path", "dataset_name", "dataset_kwargs"):
        cfg.pop(key, None)
        original.pop(key, None)
    assert cfg == original  # arc_easy's prompt, choices, target, metrics: unchanged
    doc = task.eval_docs[0]
    requests = task.construct_requests(doc, task.doc_to_text(doc), metadata=("spoken_arc_easy_local", 0, 1))
    assert [r.arguments[1] for r in requests] == [" a rock", " the sun", " a cloud", " ice"]
    (clip,) = requests[0].arguments[2]["audio"]
    assert clip[TRANSCRIPT] == "Question: Which of these gives off light?\nAnswer:" and Path(clip["path"]).is_file()


def test_what_cannot_be_spoken_is_refused_by_name(src, twins, tmp_path, env, caplog):
    from lm_eval_audio.twin.cli import plan
    from lm_eval_audio.twin.configs import SpeakError, UnknownName, plan_twins

    with pytest.raises(SpeakError, match="qa_rolling: output type loglikelihood_rolling"):
        plan(["qa_rolling"], tmp_path, include_path=str(src))
    with pytest.raises(SpeakError, match="qa_mc already has audio"):
        plan(["spoken_qa_mc"], tmp_path, include_path=str(src), prefix="again_")
    with pytest.raises(SpeakError, match=r"spoken_qa_mc already names .*--prefix"):
        plan(["qa_mc"], tmp_path, include_path=str(src))  # another folder's twin would be shadowed
    with pytest.raises(UnknownName, match="no task, group or tag named 'qa_nope'"):
        plan_twins(["qa_nope"], manager(src).task_index, output=tmp_path)
    # a question field the documents lack: each document's failure is named, and the command fails
    caplog.set_level(logging.ERROR, logger="lm_eval_audio")
    assert speak("qa_mc", "--output", str(tmp_path / "q"), "--include_path", str(src), "--speak", "question",
                 "--question_field", "query", "--prefix", "q_") == 1
    assert "q_qa_mc doc 0" in caplog.text and "'query' field" in caplog.text


def test_mmlu_loader_task_twin_offline(test_data, tmp_path, env):
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.data.mmlu import text_prompt

    env["mp"].setenv("LM_EVAL_AUDIO_SYNTH", "1")
    mmlu = str(test_data / "mmlu")
    out = tmp_path / "twins"
    assert speak("mmlu_twin_anatomy", "--output", str(out), "--metadata", json.dumps({"mmlu_path": mmlu}),
                 "--limit", "2") == 0
    tm = TaskManager(include_path=str(out), include_defaults=False, metadata={"mmlu_path": mmlu})
    task = tm.load("spoken_mmlu_twin_anatomy")["tasks"]["spoken_mmlu_twin_anatomy"]
    doc = task.eval_docs[1]
    assert doc["mmlu_id"] == "anatomy/1"
    (req, *_) = task.construct_requests(doc, task.doc_to_text(doc), metadata=("spoken_mmlu_twin_anatomy", 1, 1))
    assert req.arguments[2]["audio"][0][TRANSCRIPT] == text_prompt(doc)  # the text twin's own prompt, spoken
    task.build_all_requests(limit=2)
    protocol = task.dump_config()["metadata"]["protocol"]
    assert protocol["source"] == mmlu  # what the MMLU loader recorded about its data
    assert protocol["tts"]["backend"] == "espeak" and protocol["items_scored"] == 2
