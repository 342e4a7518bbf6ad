"""Every architecture that runs here, through the real `lm_eval` command line (its own parser and
run, in this process: an `lm_eval` start costs 15-40 s on two cores) on an audio multiple-choice
task, an ASR task and a text task, with and without `--apply_chat_template`. Each tiny checkpoint
is built once per session (`arch_checkpoint`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from arch_cases import RUNNABLE

from lm_eval_audio.arch.facts import facts
from lm_eval_audio.arch.prompts import TEXT_OPEN

TASKS = ["spoken_mmlu_seed_mc", "asr_synth", "mmlu_seed_mc"]
LIMIT = 2


@pytest.fixture(scope="module")
def tts_cache(tmp_path_factory) -> Path:
    """One speech cache for every run: the clips are the same for every architecture."""
    return tmp_path_factory.mktemp("tts")


@pytest.fixture(scope="module", autouse=True)
def task_index_once():
    """lm-eval indexes its ~27,000 task YAML files on every start (over 90% of a tiny run); the
    runs here share one index per set of task folders. Parsing, model loading and evaluation are
    the command's own."""
    from lm_eval.tasks._index import TaskIndex

    build, built = TaskIndex.build, {}

    def once(paths, **kwargs):
        paths = list(paths)
        key = (tuple(str(p) for p in paths), tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build(paths, **kwargs)
        return dict(built[key])

    mp = pytest.MonkeyPatch()
    mp.setattr(TaskIndex, "build", staticmethod(once))
    yield
    mp.undo()


def _lm_eval(argv: list[str], monkeypatch) -> None:
    from lm_eval.__main__ import cli_evaluate

    monkeypatch.setattr(sys, "argv", ["lm_eval", *argv])
    cli_evaluate()


@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
@pytest.mark.parametrize("arch", RUNNABLE)
def test_architecture_through_lm_eval(arch, chat, arch_checkpoint, tts_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_BACKEND", "espeak")
    monkeypatch.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tts_cache))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    _lm_eval(["--model", "hf-audio", "--model_args", f"pretrained={arch_checkpoint(arch)}", "--tasks", ",".join(TASKS),
              "--limit", str(LIMIT), "--batch_size", "2", "--gen_kwargs", "max_gen_toks=8", "--log_samples",
              "--output_path", str(out)]
             + (["--apply_chat_template"] if chat else []), monkeypatch)
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert results["config"]["model"] == "hf-audio"
    assert results["config"]["model_type"] == arch  # from get_model_info: the architecture that ran
    assert results["config"]["kv_reuse"] == facts(arch).kv_reuse
    samples = {}
    for f in out.rglob("samples_*.jsonl"):
        samples[f.name.split("samples_")[1].rsplit("_", 1)[0]] = [json.loads(x) for x in f.read_text().splitlines()]
    assert set(samples) == set(TASKS) and all(len(s) == LIMIT for s in samples.values())
    # Each document's own clip reached the model: different clips, different letter scores.
    assert len({tuple(r[0] for r in s["filtered_resps"]) for s in samples["spoken_mmlu_seed_mc"]}) == LIMIT
    # With the template, contexts were rendered by the model's own chat template (render_chat's markers).
    assert all((TEXT_OPEN in s["arguments"]["gen_args_0"]["arg_0"]) == chat
               for task in TASKS for s in samples[task])
    assert "wer,none" in results["results"]["asr_synth"]
    assert 0 <= results["results"]["mmlu_seed_mc"]["acc,none"] <= 1
