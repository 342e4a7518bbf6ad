"""Spoken MMLU and its text twin: data routes, the seed's subset, lazy audio, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_audio.data import mmlu
from lm_eval_audio.tts import ClipMissingError
from lm_eval_audio.files import tasks_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mmlu_dir(test_data) -> Path:
    return test_data / "mmlu"


@pytest.fixture(scope="module")
def manager(mmlu_dir):
    from lm_eval.tasks import TaskManager

    # Only our folder: indexing lm-eval's own tasks is slow.
    return TaskManager(include_defaults=False, include_path=str(tasks_dir()), metadata={"mmlu_path": str(mmlu_dir)})


def test_local_csv_route_matches_cais_mmlu(mmlu_dir, test_data):
    """The CSV loader's rows are the full copy's (tests/data keeps every subject's first rows and
    an index of the whole test split: ids, answers, content digests), and that copy is cais/mmlu's."""
    import gzip
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    try:
        from make_test_data import row_digest
    finally:
        sys.path.pop(0)
    with gzip.open(test_data / "mmlu_test_index.tsv.gz", "rt", encoding="utf-8") as fh:
        index = [line.rstrip("\n").split("\t") for line in fh]
    assert len(index) == 14042
    counts = {letter: 0 for letter in mmlu.LETTERS}
    for _, _, letter, _ in index:
        counts[letter] += 1
    assert counts == {"A": 3222, "B": 3462, "C": 3582, "D": 3776}  # as cais/mmlu's test split
    by_id = {mmlu_id: (letter, digest) for mmlu_id, _, letter, digest in index}

    data = mmlu.load_mmlu("all", mmlu_dir)
    assert len(data["dev"]) == 285 and data["test"][0]["mmlu_id"] == "abstract_algebra/0"
    assert len({r.split("/")[0] for r in data["test"]["mmlu_id"]}) == 57
    for row in data["test"]:
        assert by_id[row["mmlu_id"]] == (mmlu.LETTERS[row["answer"]],
                                        row_digest(row["question"], row["choices"], row["answer"]))
    assert len(mmlu.load_mmlu("anatomy", mmlu_dir)["test"]) == 135


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(mmlu.MMLUDataError, match="does-not-exist"):
        mmlu.load_mmlu("all", "./does-not-exist")
    (tmp_path / "test").mkdir()
    (tmp_path / "dev").mkdir()
    (tmp_path / "test" / "x_test.csv").write_text("Q?,a,b,c,d,A\nQ2?,a,b,c,d,E\n")
    (tmp_path / "dev" / "x_dev.csv").write_text("Q?,a,b,c,d,A\n")
    with pytest.raises(mmlu.MMLUDataError, match=r"x_test.csv, row 2: answer must be one of A-D, got 'E'"):
        mmlu.load_mmlu("x", tmp_path)


def test_prompts_say_the_same_thing():
    doc = {"question": " 2+2 = ", "choices": ["3", "4", "5", "6"], "answer": 1}
    assert mmlu.text_prompt(doc) == "2+2 =\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    assert mmlu.text_prompt(doc) == mmlu.speech_text(doc) + "\nAnswer:"
    assert mmlu.speech_text(doc, instruction=True).startswith(mmlu.INSTRUCTION)


def test_groups_cover_57_subjects_and_twins_pair(manager):
    loaded = manager.load(["spoken_mmlu", "mmlu_twin"])
    spoken = sorted(n for n in loaded["tasks"] if n.startswith("spoken_mmlu_"))
    twin = sorted(n for n in loaded["tasks"] if n.startswith("mmlu_twin_"))
    assert len(spoken) == 57 and len(twin) == 57
    assert [n.removeprefix("spoken_mmlu_") for n in spoken] == [n.removeprefix("mmlu_twin_") for n in twin]
    a = loaded["tasks"]["spoken_mmlu_anatomy"]
    b = loaded["tasks"]["mmlu_twin_anatomy"]
    assert [d["mmlu_id"] for d in a.eval_docs] == [d["mmlu_id"] for d in b.eval_docs]


def test_requests_carry_clip_references_not_samples(manager, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path))
    monkeypatch.delenv("LM_EVAL_AUDIO_SYNTH", raising=False)
    task = manager.load("spoken_mmlu_anatomy")["tasks"]["spoken_mmlu_anatomy"]
    doc = task.eval_docs[0]
    assert set(doc) == {"question", "subject", "choices", "answer", "mmlu_id"}  # the item, no run settings
    requests = task.construct_requests(doc, task.doc_to_text(doc), metadata=("spoken_mmlu_anatomy", 0, 1))
    assert [r.arguments[1] for r in requests] == [" A", " B", " C", " D"]
    audio = requests[0].arguments[2]["audio"]
    assert all(r.arguments[2]["audio"] is audio for r in requests)  # one clip for the four letters
    (ref,) = audio
    assert set(ref) == {"path", "sha256"} and Path(ref["path"]).is_file()
    assert json.dumps(ref)  # serialisable: no arrays held in requests
    # synthesis off + empty cache: the error names the item and the command to run
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("LM_EVAL_AUDIO_SYNTH", "0")
    task = manager.load("spoken_mmlu_anatomy")["tasks"]["spoken_mmlu_anatomy"]  # a new run reads the settings
    with pytest.raises(ClipMissingError, match=r"MMLU item anatomy/0.*lm-eval-audio synth --task spoken_mmlu --backend espeak"):
        task.doc_to_audio(doc)


def _samples(out: Path, task: str) -> list[dict]:
    (path,) = out.rglob(f"samples_{task}_20*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_real_cli_spoken_and_twin(tiny_model_dir, mmlu_dir, cli_env, tmp_path):
    cache = tmp_path / "clips"
    env = dict(cli_env, LM_EVAL_AUDIO_TTS_CACHE=str(cache), LM_EVAL_AUDIO_SYNTH="1")
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "lm_eval", "--model", "qwen2audio",
        "--model_args", f"pretrained={tiny_model_dir}", "--device", "cpu", "--batch_size", "4",
        "--tasks", "spoken_mmlu_anatomy,mmlu_twin_anatomy,spoken_mmlu_gen_anatomy,mmlu_twin_gen_anatomy",
        "--limit", "2", "--gen_kwargs", "max_gen_toks=8",
        "--metadata", json.dumps({"mmlu_path": str(mmlu_dir)}),
        "--log_samples", "--output_path", str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    for task in ("spoken_mmlu_anatomy", "mmlu_twin_anatomy"):  # acc is the model's own argmax against the key
        rows = _samples(out, task)
        # the samples file holds numbers as strings
        hits = [max(range(4), key=lambda k: float(x["filtered_resps"][k][0])) == int(x["target"]) for x in rows]
        assert len(rows) == 2 and results[task]["acc,none"] == sum(hits) / 2
    for task in ("spoken_mmlu_gen_anatomy", "mmlu_twin_gen_anatomy"):
        letters = [(x["filtered_resps"][0][0], x["target"]) for x in _samples(out, task)]
        assert results[task]["extraction_failure,choice"] == sum(a == "[unmapped]" for a, _ in letters) / 2
        assert results[task]["exact_match,choice"] == sum(a == t for a, t in letters) / 2
        assert results[task]["judge_rate,choice"] == 0.0  # the judge is off by default
    clips = sorted(cache.rglob("*.flac"))
    assert len(clips) == 4  # 2 items x (plain, with spoken instruction)

    # doc ids pair: the same item and letter under the same id in both modalities
    for spoken, twin in (("spoken_mmlu_anatomy", "mmlu_twin_anatomy"), ("spoken_mmlu_gen_anatomy", "mmlu_twin_gen_anatomy")):
        s = {x["doc_id"]: (x["doc"]["mmlu_id"], x["target"]) for x in _samples(out, spoken)}
        t = {x["doc_id"]: (x["doc"]["mmlu_id"], x["target"]) for x in _samples(out, twin)}
        assert s == t and len(s) == 2
    gen = _samples(out, "spoken_mmlu_gen_anatomy")
    assert all(x["target"] in ("A", "B", "C", "D") for x in gen)
    assert all(x["filtered_resps"][0][0] in ("A", "B", "C", "D", "[unmapped]") for x in gen)

    # a second run synthesises nothing: with synthesis off it would fail on any missing clip

    env2 = dict(env, LM_EVAL_AUDIO_SYNTH="0")
    code = (
        "import json, sys\n"
        "from lm_eval import simple_evaluate\n"
        "from lm_eval.tasks import TaskManager\n"
        f"tm = TaskManager(include_defaults=False, include_path={str(tasks_dir())!r},\n"
        f"                 metadata={{'mmlu_path': {str(mmlu_dir)!r}}})\n"
        f"r = simple_evaluate(model='qwen2audio', model_args='pretrained={tiny_model_dir}', device='cpu',\n"
        "    tasks=['spoken_mmlu_anatomy', 'spoken_mmlu_gen_anatomy'], limit=2, task_manager=tm,\n"
        "    gen_kwargs='max_gen_toks=8')\n"
        "print(json.dumps({k: v.get('acc,none', v.get('exact_match,choice')) for k, v in r['results'].items()}))\n"
    )
    again = subprocess.run([sys.executable, "-c", code], env=env2, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert sorted(cache.rglob("*.flac")) == clips
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert rerun["spoken_mmlu_anatomy"] == results["spoken_mmlu_anatomy"]["acc,none"]
