"""Resume: a run killed after its first checkpoint continues from it and ends where an
uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.train import checkpoint_is_complete, last_complete_checkpoint
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
    # Killed only once checkpoint-2 is whole: trainer_state.json is written last but not
    # atomically, so its mere existence could mean a half-written file (a run that can never
    # resume from it, which is not what this test is about; the skip is tested below).
    first = out / "checkpoint-2"
    try:
        while not checkpoint_is_complete(first):
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
    # The kill may still land while a later checkpoint is being written; resume must then take
    # the newest complete one, whatever lies after it.
    last = last_complete_checkpoint(out)
    assert last is not None
    done = int(Path(last).name.split("-")[1])
    assert 2 <= done < 8

    assert main(_args(tiny_model_dir, tone_task_dir, out)) == 0
    results = json.loads((out / "finetune_results.json").read_text())
    assert results["resumed_from"].endswith(f"checkpoint-{done}")
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


def _checkpoint(folder: Path, step: int | None, state_text: str | None = None) -> Path:
    # What Trainer leaves: the adapter first, the trainer state last (`step` None: not yet written).
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    if step is not None:
        (folder / "trainer_state.json").write_text(state_text if state_text is not None
                                                   else json.dumps({"global_step": step}))
    return folder


def test_resume_never_refuses_a_used_folder_and_auto_takes_the_last_complete_checkpoint(tmp_path):
    from finetune.config import load_config
    from finetune.train import resolve_resume

    _checkpoint(tmp_path / "checkpoint-4", 4)
    _checkpoint(tmp_path / "checkpoint-10", 10)
    # Killed while saving: trainer state not written yet or half written; or one naming another step.
    _checkpoint(tmp_path / "checkpoint-12", None)
    _checkpoint(tmp_path / "checkpoint-14", 14, state_text='{"global_step": 1')
    _checkpoint(tmp_path / "checkpoint-16", 10)
    cfg = load_config(overrides={"data.task": "x", "training.output_dir": str(tmp_path), "training.resume": "never"})
    with pytest.raises(ValueError, match="already holds checkpoints"):
        resolve_resume(cfg)
    cfg.training.resume = "auto"
    assert Path(resolve_resume(cfg)).name == "checkpoint-10"
    cfg.training.resume = str(tmp_path / "checkpoint-4")
    assert resolve_resume(cfg) == str(tmp_path / "checkpoint-4")
    cfg.training.resume = str(tmp_path / "checkpoint-14")
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(cfg)
