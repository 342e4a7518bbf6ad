"""The start-up hook never breaks lm-eval: a cheap `.pth` line that cannot raise, patches that
stand down as a whole when lm-eval's internals differ, and lm-eval's own behaviour kept where
our plugin has no business (its task index, its registries, its own audio tasks)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PTH_LINE = (REPO / "lm_eval_audio.pth").read_text()


def _clean_python(code: str, *, plugin: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """`code` in a fresh `python -S` that sees the base site-packages as plain folders (their `.pth`
    files unprocessed) and, with `plugin`, this checkout plus its `.pth` line: a clean install,
    whatever other `.pth` files this environment holds."""
    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    paths = ([str(REPO)] if plugin else []) + sorted({base["purelib"], base["platlib"]})
    prelude = f"import sys\nsys.path[:0] = {paths!r}\nexec({PTH_LINE!r})\n"
    return subprocess.run([sys.executable, "-S", "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd="/")


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_pth_line_loads_only_a_tiny_finder_until_lm_eval_is_imported():
    out = _ok(_clean_python("""
        import json
        before = set(sys.modules)
        print(json.dumps({"boot": "lm_eval_audio._boot" in before, "hook": "lm_eval_audio._hook" in before,
                          "abc": "importlib.abc" in before, "metadata": "importlib.metadata" in before,
                          "ours": sorted(m for m in before if m.startswith("lm_eval_audio"))}))
        import lm_eval.api.registry as registry
        print(json.dumps({"hook": "lm_eval_audio._hook" in sys.modules, "qwen2audio": "qwen2audio" in registry.model_registry,
                          "hf": registry.get_model("hf").__name__,
                          "our_metric": "wer" in registry.metric_registry,
                          "our_filter": "choice_letter" in registry.filter_registry}))
    """))
    start, loaded = (json.loads(line) for line in out.splitlines()[-2:])
    assert start == {"boot": True, "hook": False, "abc": False, "metadata": False,
                     "ours": ["lm_eval_audio", "lm_eval_audio._boot"]}
    # Our models by name; lm-eval's registries otherwise as lm-eval ships them until our tasks load.
    assert loaded == {"hook": True, "qwen2audio": True, "hf": "HFLM", "our_metric": False, "our_filter": False}


def test_pth_line_is_silent_when_the_package_is_gone():
    proc = _clean_python("print('started')", plugin=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "started" and proc.stderr == ""


RENAME = textwrap.dedent("""
    import dataclasses
    import lm_eval_audio._hook as hook
    # What lm-eval renaming a target looks like from the plugin: the name it knows is missing.
    hook.PATCHES = tuple(dataclasses.replace(p, target=p.target + "_renamed") if p.target == {target!r} else p
                         for p in hook.PATCHES)
""")


# The first row's module loads before all others; the last one's after evaluator_utils took
# `stderr_for_metric` by name from an already patched lm_eval.api.metrics.
@pytest.mark.parametrize("target", ["_multimodal_cache_default", "ConfigurableTask.dump_config", "TaskIndex.build"])
def test_a_renamed_target_puts_everything_back_and_says_so_once(target):
    proc = _clean_python(RENAME.format(target=target) + textwrap.dedent("""
        import lm_eval.api.model as model, lm_eval.api.metrics as metrics, lm_eval.evaluator_utils as evaluator_utils
        import lm_eval.api.task as task
        from lm_eval.tasks import TaskManager
        from lm_eval.tasks._index import TaskIndex
        patched = [fn for fn in (model._multimodal_cache_default, model.CachingLM.__getattr__, metrics.stderr_for_metric,
                                 evaluator_utils.stderr_for_metric, task.ConfigurableTask.download,
                                 task.ConfigurableTask.dump_config, TaskIndex.build)
                   if getattr(fn, "_lm_eval_audio", False)]
        print(len(patched), evaluator_utils.stderr_for_metric is metrics.stderr_for_metric,
              metrics.stderr_for_metric.__module__, TaskIndex.build.__qualname__)
    """))
    assert _ok(proc).split() == ["0", "True", "lm_eval.api.metrics", "TaskIndex.build"]
    warning = [line for line in proc.stderr.splitlines() if "stands down" in line]
    assert len(warning) == 1, proc.stderr[-3000:]
    assert "the installed lm-eval 0.4.13 differs" in warning[0] and f"{target}_renamed is missing" in warning[0]
    assert "Off: " in warning[0] and "WER standard errors" in warning[0] and "--use_cache on tasks with audio" in warning[0]


@pytest.fixture(scope="module")
def text_lm_dir(tiny_model_dir, tmp_path_factory):
    """The tiny checkpoint's language model as a plain Qwen2 causal LM (what `--model hf` loads)."""
    from lm_eval_audio.tiny.qwen2_audio import build_text_backbone

    return build_text_backbone(tiny_model_dir, tmp_path_factory.mktemp("text-lm"))


def _probe_tasks(folder: Path) -> Path:
    rows = [{"q": "Is it red?", "label": 0}, {"q": "Is it blue?", "label": 1}, {"q": "Is it green?", "label": 0}]
    (folder / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "hook_probe.yaml").write_text(
        "task: hook_probe\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'probe.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: [red, blue]\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n")
    return folder


def test_model_hf_runs_when_a_target_is_renamed(text_lm_dir, tmp_path):
    tasks = _probe_tasks(tmp_path)
    proc = _clean_python(RENAME.format(target="TaskIndex.build") + textwrap.dedent(f"""
        import lm_eval
        from lm_eval.tasks import TaskManager
        out = lm_eval.simple_evaluate(model="hf", model_args="pretrained={text_lm_dir}", tasks=["hook_probe"],
                                      task_manager=TaskManager(include_defaults=False, include_path={str(tasks)!r}),
                                      device="cpu", batch_size=2, bootstrap_iters=0)
        print("acc", out["results"]["hook_probe"]["acc,none"])
    """), timeout=600)
    assert _ok(proc).splitlines()[-1].startswith("acc ")
    assert sum("stands down" in line for line in proc.stderr.splitlines()) == 1


# --- lm-eval's own behaviour kept ---------------------------------------------------------------


def test_task_manager_takes_its_arguments_as_lm_eval_defines_them(tmp_path):
    from lm_eval.tasks import TaskManager

    folder = str(_probe_tasks(tmp_path))
    by_position = TaskManager(None, folder, False)  # verbosity, include_path, include_defaults
    assert by_position.include_path == folder and by_position.all_tasks == ["hook_probe"]
    listed = TaskManager(include_path=[folder], include_defaults=False)
    assert listed.include_path == [folder] and listed.all_tasks == ["hook_probe"]  # only what the caller named


def test_our_tasks_count_as_part_of_lm_evals_defaults(tmp_path, monkeypatch):
    from lm_eval.tasks._index import TaskIndex

    import lm_eval_audio._hook as hook

    defaults = tmp_path / "defaults"  # stands in for lm-eval's own folder (14k YAMLs to index)
    defaults.mkdir()
    user = tmp_path / "user"
    user.mkdir()
    _probe_tasks(user)
    monkeypatch.setattr(hook, "_lm_eval_tasks_dir", lambda: defaults)
    with_defaults = TaskIndex.build([defaults, user])
    assert "spoken_mmlu_anatomy" in with_defaults and "hook_probe" in with_defaults
    assert "spoken_mmlu_anatomy" not in TaskIndex.build([user])  # no defaults named: none of ours either


def test_fewshot_refusal_is_ours_only():
    import datasets
    from lm_eval.api.task import ConfigurableTask

    from lm_eval_audio.data.task_audio import refuses_fewshot

    def load(**kwargs):
        rows = [{"path": "a.wav", "label": 0}, {"path": "b.wav", "label": 1}]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows),
                                     "train": datasets.Dataset.from_list(rows)})

    def task(name, doc_to_audio):
        return ConfigurableTask(config=dict(
            task=name, output_type="multiple_choice", custom_dataset=load, test_split="test",
            training_split="train", doc_to_text="Range?", doc_to_choice=["a", "b"], doc_to_target="label",
            doc_to_audio=doc_to_audio, num_fewshot=2, fewshot_split="train"))

    # lm-eval's own kind of audio task (its common_voice_en): lm-eval's behaviour, no refusal of ours.
    theirs = task("their_audio", "path")  # a column of audio, as lm-eval's own audio tasks name it
    theirs.build_all_requests(limit=1)
    assert len(theirs.instances) == 2
    ours = task("our_audio", refuses_fewshot(lambda doc: [{"path": doc["path"]}]))
    with pytest.raises(ValueError, match=r"^our_audio: num_fewshot=2 on a task with audio: .* text without "
                                         r"their clips\. Run it with --num_fewshot 0"):
        ours.build_all_requests(limit=1)
    ours.set_config(key="num_fewshot", value=0)
    ours.build_all_requests(limit=1)
    assert ours.instances[0].arguments[2] == {"audio": [{"path": "a.wav"}]}
