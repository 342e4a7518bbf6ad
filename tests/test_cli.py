"""The plain `lm_eval` command with our plugin: registration, task discovery, audio end to end,
the request cache, and data-parallel runs under `accelerate launch`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, env, cwd, timeout=600):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def test_startup_hook_is_light_and_keeps_builtin_models(cli_env, tmp_path):
    code = textwrap.dedent("""
        import sys
        assert "lm_eval_audio._boot" in sys.modules, "start-up finder not installed"
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        from lm_eval.api.registry import get_model
        assert "lm_eval_audio._hook" in sys.modules, "hook not loaded with lm_eval"
        assert "torch" not in sys.modules
        print(get_model("hf").__name__, get_model("qwen2audio").__name__, get_model("dummy").__name__)
    """)
    out = _run([sys.executable, "-c", code], cli_env, tmp_path)
    assert out.split() == ["HFLM", "Qwen2AudioLM", "DummyLM"]


def _listing_tables(out: str) -> dict[str, dict[str, list[str]]]:
    """`lm_eval ls tasks` prints three tables (Group, Tag, Task): {table: {name: other columns}}."""
    tables: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in out.splitlines():
        if not line.startswith("|") or set(line) <= set("|-"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("Group", "Tag", "Task") and (len(cells) == 1 or cells[1] in ("Config Location", "")):
            current = tables.setdefault(cells[0], {})
        elif current is not None:
            current[cells[0]] = cells[1:]
    return tables


def test_lm_eval_ls_lists_our_tasks_groups_and_tags(cli_env, tmp_path):
    expected: dict[str, dict[str, Path]] = {"Task": {}, "Group": {}, "Tag": {}}
    for path in (REPO / "tasks").rglob("*.yaml"):
        config = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # tolerant of !function tags
        if not isinstance(config, dict):
            continue
        if isinstance(config.get("group"), str):
            expected["Group"][config["group"]] = path
        elif isinstance(config.get("task"), str):
            expected["Task"][config["task"]] = path
        tags = config.get("tag") or []
        for tag in [tags] if isinstance(tags, str) else tags:
            expected["Tag"][tag] = path
    # The task folder defines all three kinds; an empty one would make this test pass vacuously.
    assert len(expected["Task"]) > 100 and len(expected["Group"]) >= 10 and expected["Tag"]
    tables = _listing_tables(_run(["lm_eval", "ls", "tasks"], cli_env, tmp_path))
    assert {"Group", "Tag", "Task"} <= set(tables), sorted(tables)
    for kind in ("Task", "Group"):
        missing = sorted(set(expected[kind]) - set(tables[kind]))
        assert not missing, f"{kind}s not listed: {missing[:10]}"
        for name, path in expected[kind].items():
            assert Path(tables[kind][name][0]) == path, (kind, name, tables[kind][name])
    assert set(expected["Tag"]) <= set(tables["Tag"]), sorted(set(expected["Tag"]) - set(tables["Tag"]))
    assert tables["Task"]["spoken_mmlu_anatomy"][1] == "multiple_choice"
    assert tables["Task"]["librispeech_dev_clean_200"][1] == "generate_until"


@pytest.fixture(scope="module")
def audio_tasks(test_data, tmp_path_factory) -> Path:
    """A multiple-choice and a generation task over real LJ Speech clips, defined in YAML."""
    folder = tmp_path_factory.mktemp("audio-tasks")
    root = test_data / "speech" / "ljspeech"
    rows = []
    for line in (root / "transcripts.psv").read_text().splitlines():
        clip_id, text = line.split("|", 1)
        rows.append({"id": clip_id, "path": str(root / "wavs" / f"{clip_id}.flac"), "text": text, "label": len(text) % 2})
    (folder / "lj.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "utils.py").write_text(textwrap.dedent("""
        from lm_eval_audio.audio import audio_ref

        def doc_to_audio(doc):
            return [audio_ref(doc["path"])]
    """))
    common = f"""
        dataset_path: json
        dataset_kwargs:
          data_files: {{test: "{folder / 'lj.jsonl'}"}}
        test_split: test
        doc_to_audio: !function utils.doc_to_audio
    """
    (folder / "lj_audio_mc.yaml").write_text(textwrap.dedent(f"""
        task: lj_audio_mc
        {textwrap.dedent(common).strip().replace(chr(10), chr(10) + '        ')}
        output_type: multiple_choice
        doc_to_text: "Is the sentence long or short? Answer:"
        doc_to_choice: ["A", "B"]
        doc_to_target: label
        metric_list:
          - metric: acc
    """))
    (folder / "lj_audio_gen.yaml").write_text(textwrap.dedent(f"""
        task: lj_audio_gen
        {textwrap.dedent(common).strip().replace(chr(10), chr(10) + '        ')}
        output_type: generate_until
        doc_to_text: "Transcribe the audio:"
        doc_to_target: text
        generation_kwargs: {{until: ["<|im_end|>"], max_gen_toks: 6, do_sample: false}}
        metric_list:
          - metric: exact_match
    """))
    return folder


def _results(output_path: Path) -> tuple[dict, dict]:
    results_file = next(output_path.rglob("results_*.json"))
    samples = {}
    for f in output_path.rglob("samples_*.jsonl"):
        task = f.name.split("samples_")[1].rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in f.read_text().splitlines()]
    return json.loads(results_file.read_text()), samples


def _cli_args(tiny_model_dir, audio_tasks, tasks="lj_audio_mc,lj_audio_gen"):
    return [
        "--model", "qwen2audio", "--model_args", f"pretrained={tiny_model_dir}", "--tasks", tasks,
        "--include_path", str(audio_tasks), "--limit", "4", "--batch_size", "4", "--log_samples",
    ]


@pytest.fixture(scope="module")
def first_run(tiny_model_dir, audio_tasks, tmp_path_factory, make_cli_env):
    """One plain `lm_eval` run with --use_cache (each CLI start indexes ~14k lm-eval YAMLs: share it)."""
    tmp = tmp_path_factory.mktemp("first-run")
    cache = tmp / "cache" / "lm"
    log = _run(["lm_eval", *_cli_args(tiny_model_dir, audio_tasks), "--use_cache", str(cache),
                "--output_path", str(tmp / "run1")], make_cli_env(tmp), tmp)
    return log, tmp / "run1", cache


def test_lm_eval_cli_with_audio_and_request_cache(tiny_model_dir, audio_tasks, first_run, cli_env, tmp_path):
    log, run1, cache = first_run
    assert "Requests remaining: 8" in log and "Requests remaining: 4" in log
    results, samples = _results(run1)
    assert results["config"]["model"] == "qwen2audio"
    assert len(samples["lj_audio_mc"]) == 4 and len(samples["lj_audio_gen"]) == 4
    # Each document's own clip reached the model: different clips, different scores.
    scores = {tuple(r[0] for r in s["filtered_resps"]) for s in samples["lj_audio_mc"]}
    assert len(scores) == 4

    second = _run(["lm_eval", *_cli_args(tiny_model_dir, audio_tasks), "--use_cache", str(cache),
                   "--output_path", str(tmp_path / "run2")], cli_env, tmp_path)
    assert "Cached requests: 8, Requests remaining: 0" in second
    assert "Cached requests: 4, Requests remaining: 0" in second
    results2, samples2 = _results(tmp_path / "run2")
    assert results2["results"] == results["results"]
    assert [s["filtered_resps"] for s in samples2["lj_audio_gen"]] == [s["filtered_resps"] for s in samples["lj_audio_gen"]]


def test_accelerate_launch_splits_work_by_rank(tiny_model_dir, audio_tasks, first_run, cli_env, tmp_path):
    single_log, run1, _ = first_run
    assert "on rank 1" not in single_log
    # `accelerate launch --cpu` starts a single process; two CPU processes (gloo) are launched as
    # on GPUs, with ACCELERATE_USE_CPU telling accelerate that the ranks live on the CPU.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = dict(cli_env, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    args = _cli_args(tiny_model_dir, audio_tasks, tasks="lj_audio_mc")
    log = _run([*launch, "-m", "lm_eval", *args, "--output_path", str(tmp_path / "dp")], env, tmp_path)
    assert "Building contexts for lj_audio_mc on rank 1" in log
    single, single_samples = _results(run1)
    dp, dp_samples = _results(tmp_path / "dp")
    assert dp["results"]["lj_audio_mc"]["acc,none"] == single["results"]["lj_audio_mc"]["acc,none"]
    by_doc = lambda ss: {s["doc_id"]: [r[0] for r in s["filtered_resps"]] for s in ss}  # noqa: E731
    assert by_doc(dp_samples["lj_audio_mc"]).keys() == by_doc(single_samples["lj_audio_mc"]).keys()
    for doc, scores in by_doc(dp_samples["lj_audio_mc"]).items():
        assert scores == pytest.approx(by_doc(single_samples["lj_audio_mc"])[doc], abs=1e-5)


def test_make_tiny_model_is_deterministic_and_small(cli_env, tmp_path):
    for name in ("a", "b"):
        _run(["lm-eval-audio", "make-tiny-model", str(tmp_path / name)], cli_env, tmp_path)
    a, b = (tmp_path / n / "model.safetensors" for n in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()
    assert sum(f.stat().st_size for f in (tmp_path / "a").iterdir()) < 2 * 1024 * 1024
