"""Every architecture `hf-audio` serves here, through the real `lm_eval` command: an audio
multiple-choice task, an ASR task and a text task in one run per architecture (each `lm_eval`
start costs 15-40 s). Architectures that cannot work here are refused with an error naming them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lm_eval_audio.arch.facts import ARCHS

TASKS = ["spoken_mmlu_seed_mc", "asr_synth", "mmlu_seed_mc"]
SERVED = [a for a, f in ARCHS.items() if f.available and f.prompt_route == "text"]


@pytest.fixture(scope="module")
def tts_cache(tmp_path_factory) -> Path:
    """One speech cache for every run: the clips are the same for every architecture."""
    return tmp_path_factory.mktemp("tts")


@pytest.mark.parametrize("arch", SERVED)
def test_architecture_through_lm_eval(arch, tmp_path_factory, tts_cache, make_cli_env):
    from lm_eval_audio.tiny.archs import build_arch

    tmp = tmp_path_factory.mktemp(f"cli-{arch}")
    model_dir = build_arch(tmp / "model", arch)
    env = dict(make_cli_env(tmp), LM_EVAL_AUDIO_TTS_BACKEND="espeak", LM_EVAL_AUDIO_TTS_CACHE=str(tts_cache),
               OMP_NUM_THREADS="1")
    cmd = ["lm_eval", "--model", "hf-audio", "--model_args", f"pretrained={model_dir}", "--tasks", ",".join(TASKS),
           "--limit", "3", "--batch_size", "3", "--log_samples", "--output_path", str(tmp / "out"),
           "--apply_chat_template"]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(next((tmp / "out").rglob("results_*.json")).read_text())
    assert results["config"]["model"] == "hf-audio"
    assert results["config"]["model_type"] == arch  # from get_model_info: the architecture that ran
    assert results["config"]["kv_reuse"] == bool(ARCHS[arch].kv_reuse)
    samples = {}
    for f in (tmp / "out").rglob("samples_*.jsonl"):
        samples[f.name.split("samples_")[1].rsplit("_", 1)[0]] = [json.loads(x) for x in f.read_text().splitlines()]
    assert set(samples) == set(TASKS) and all(len(s) == 3 for s in samples.values())
    # Each document's own clip reached the model: different clips, different letter scores.
    assert len({tuple(r[0] for r in s["filtered_resps"]) for s in samples["spoken_mmlu_seed_mc"]}) == 3
    assert "wer,none" in results["results"]["asr_synth"]
    assert 0 <= results["results"]["mmlu_seed_mc"]["acc,none"] <= 1


@pytest.mark.parametrize("arch", [a for a in ARCHS if a not in SERVED])
def test_architecture_that_cannot_work_is_named(arch, tmp_path):
    from lm_eval_audio.models.hf_audio import HFAudioLM

    (tmp_path / "config.json").write_text(json.dumps({"model_type": arch}))
    with pytest.raises(ValueError, match=rf"hf-audio: architecture '{arch}' cannot be evaluated here: \S"):
        HFAudioLM(pretrained=str(tmp_path))
