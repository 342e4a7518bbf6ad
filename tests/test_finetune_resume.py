"""Resume: a run killed after its first checkpoint continues from it and ends where an
uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_finetune import tone_task_dir  # noqa: F401  (fixture)


def _args(tiny, task_dir, out) -> list[str]:
    return ["--pretrained", str(tiny), "--task", "ft_tones", "--set", f"data.include_path=[{task_dir}]",
            "--output-dir", str(out), "--max-steps", "8", "--batch-size", "4", "--save-steps", "2",
            "--learning-rate", "1e-3", "--no-eval", "--set", "lora.modules_to_save=[multi_modal_projector]",
            "--set", "lora.dropout=0.0", "--set", "training.save_total_limit=null", "--set", "training.logging_steps=1"]


def test_killed_run_resumes_from_its_checkpoint(tiny_model_dir, tone_task_dir, tmp_path, cli_env):  # noqa: F811
    from finetune.cli import main

    out = tmp_path / "interrupted"
    env = {**cli_env, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "finetune", *_args(tiny_model_dir, tone_task_dir, out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    first = out / "checkpoint-2" / "trainer_state.json"  # written last in a checkpoint
    try:
        while not first.is_file():
            if proc.poll() is not None:
                pytest.fail(f"training exited ({proc.returncode}) before its first checkpoint:\n"
                            f"{proc.stderr.read().decode()[-3000:]}")
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "adapter_model.safetensors").is_file(), "the run finished before it was killed"
    done = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
    assert done and done[-1] < 8

    assert main(_args(tiny_model_dir, tone_task_dir, out)) == 0
    import json

    results = json.loads((out / "finetune_results.json").read_text())
    assert results["resumed_from"].endswith(f"checkpoint-{done[-1]}")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    logged = [h["step"] for h in state["log_history"] if "loss" in h]
    assert logged == list(range(1, 9))  # each step once: the first run's, then the resumed run's

    # The resumed run ends with the weights of a run that was never interrupted.
    straight = tmp_path / "straight"
    assert main(_args(tiny_model_dir, tone_task_dir, straight)) == 0
    a = load_file(out / "adapter_model.safetensors")
    b = load_file(straight / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_resume_never_refuses_a_used_folder(tmp_path):
    from finetune.config import load_config
    from finetune.train import resolve_resume

    (tmp_path / "checkpoint-4").mkdir()
    cfg = load_config(overrides={"data.task": "x", "training.output_dir": str(tmp_path), "training.resume": "never"})
    with pytest.raises(ValueError, match="already holds checkpoints"):
        resolve_resume(cfg)
    cfg.training.resume = "auto"
    assert Path(resolve_resume(cfg)).name == "checkpoint-4"
