"""Fine-tuning architectures other than Qwen2-Audio (Audio Flamingo 3, Granite Speech, Gemma 3n:
their processor's audio and their own forward): the adapter the trainer writes, scored by
`lm_eval --model hf-audio ...,peft=DIR`, gives exactly the trainer's own end-of-training evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from arch_cases import RUNNABLE

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "finetune" / "configs" / "timbre_tiny.yaml"
TASK = "timbre_range_synth"
# Modules trained in full besides LoRA. The demo config's (projector, Qwen2-Audio's convolutions,
# lm_head) where the architecture has them; Granite Speech and Gemma 3n tie lm_head to the input
# embeddings, which PEFT cannot save in full and lm-eval then re-tie, so LoRA alone there.
SAVED = {"audioflamingo3": "[multi_modal_projector, lm_head]", "granite_speech": "[]", "gemma3n": "[]"}
LIMIT = 24


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in ("audioflamingo3", "granite_speech", "gemma3n") if a in RUNNABLE])
def test_adapter_of_another_architecture_scores_as_the_trainer_said(arch, arch_checkpoint, cli_env, tmp_path):
    model_dir = arch_checkpoint(arch)
    env = dict(cli_env, LM_EVAL_AUDIO_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    out = tmp_path / "adapter"
    train = subprocess.run(
        [sys.executable, "-m", "finetune", "--config", str(DEMO_CONFIG), "--pretrained", str(model_dir),
         "--output-dir", str(out), "--max-steps", "12", "--batch-size", "8", "--eval-limit", str(LIMIT),
         "--set", "evaluation.evaluate_base=false", "--set", f"lora.modules_to_save={SAVED[arch]}"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    assert "LoRA layers per tower" in train.stderr and "'language_model'" in train.stderr
    trained = json.loads((out / "finetune_results.json").read_text())
    assert trained["train_metrics"]["train_loss"] > 0
    trainer = trained["eval_results"][TASK]

    results_dir = tmp_path / "lm_eval_out"
    harness = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf-audio", "--model_args", f"pretrained={model_dir},peft={out}",
         "--device", "cpu", "--tasks", TASK, "--limit", str(LIMIT), "--batch_size", "8", "--log_samples",
         "--output_path", str(results_dir)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert harness.returncode == 0, harness.stderr[-4000:]
    report = json.loads(next(results_dir.rglob("results_*.json")).read_text())
    assert report["config"]["model_type"] == arch and report["config"]["peft"] == str(out)
    got = report["results"][TASK]
    assert got["acc,none"] == pytest.approx(trainer["acc,none"], abs=1e-9)
    samples = [json.loads(x) for x in next(results_dir.rglob("samples_*.jsonl")).read_text().splitlines()]
    assert len(samples) == LIMIT
    # The adapter is LoRA on the language model (trained away from zero), the head trained in full.
    from safetensors.torch import load_file

    weights = load_file(out / "adapter_model.safetensors")
    assert any("language_model" in k and "lora_B" in k and float(v.abs().sum()) > 0 for k, v in weights.items())
    assert any("lm_head" in k for k in weights) == ("lm_head" in SAVED[arch])
