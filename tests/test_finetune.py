"""finetune: config validation, data rendering, label mask, train/eval parity, a short run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from finetune.collate import IGNORE_INDEX, AudioSFTCollator, clip_features, encode_pair, tokenize_example
from finetune.config import DataConfig, load_config
from finetune.data import Example, jsonl_examples, task_examples

TONE_TASK_YAML = """\
task: ft_tones
custom_dataset: !function utils.load
training_split: train
test_split: test
output_type: multiple_choice
doc_to_text: "<audio>Classify the pitch range of the singing: answer 0 for narrow, 1 for moderate and 2 for wide. Answer:"
doc_to_audio: !function utils.doc_to_audio
doc_to_choice: ["0", "1", "2"]
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1
"""

TONE_TASK_UTILS = """\
import os
from pathlib import Path
import numpy as np
import soundfile as sf
import datasets

def load(**kwargs):
    root = Path(__file__).parent / "clips"
    splits = {}
    for split, n, seed in (("train", 48, 1), ("test", 24, 2)):
        rng = np.random.default_rng(seed)
        rows = []
        for i in range(n):
            label = i % 3
            f0 = (200.0, 500.0, 1200.0)[label] * rng.uniform(0.9, 1.1)
            t = np.arange(int(16000 * rng.uniform(0.6, 1.2))) / 16000
            p = root / split / f"{i}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                sf.write(p, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 16000)
            rows.append({"path": str(p), "label": label})
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)

def doc_to_audio(doc):
    return [doc["path"]]
"""


@pytest.fixture(scope="session")
def tone_task_dir(tmp_path_factory) -> Path:
    """A small 3-class task (tone pitch) with train/test splits, as an --include_path folder."""
    d = tmp_path_factory.mktemp("ft_task")
    (d / "ft_tones.yaml").write_text(TONE_TASK_YAML)
    (d / "utils.py").write_text(TONE_TASK_UTILS)
    return d


def _tone(path: Path, seconds: float, f0: float = 440.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 16000)
    return path


def _tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


# -- config ------------------------------------------------------------------------------------


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"lora\.rank"):
        load_config(overrides={"data.task": "x", "lora.rank": 4})
    with pytest.raises(ValueError, match="unknown section"):
        load_config(overrides={"data.task": "x", "optim.lr": 1})
    with pytest.raises(ValueError, match="all-linear"):
        load_config(overrides={"data.task": "x", "lora.target_modules": "all-linear"})
    with pytest.raises(ValueError, match="exactly one of data.task and data.jsonl"):
        load_config(overrides={})
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_demo_config_loads_and_targets_both_towers():
    cfg = load_config(Path(__file__).parents[1] / "finetune" / "configs" / "timbre_tiny.yaml")
    import re

    pattern = re.compile(cfg.lora.target_modules)
    assert pattern.fullmatch("base_model.model.model.language_model.layers.0.self_attn.q_proj")
    assert pattern.fullmatch("base_model.model.model.audio_tower.layers.1.fc2")
    assert not pattern.fullmatch("base_model.model.model.multi_modal_projector.linear")
    assert cfg.data.task == "timbre_range_synth"


def test_default_targets_leave_encoder_alone(tiny_model_dir):
    from finetune.config import LoraConfigSection, ModelConfig
    from finetune.modeling import apply_lora, load_base

    base, _, _ = load_base(ModelConfig(pretrained=str(tiny_model_dir)))
    model = apply_lora(base, LoraConfigSection())
    lora_modules = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and n.endswith("proj")]
    assert lora_modules and all("language_model" in n for n in lora_modules)


# -- features and tokens ------------------------------------------------------------------------


def test_clip_features_equal_full_window_features(tiny_model_dir):
    from transformers import AutoFeatureExtractor

    from lm_eval_audio.arch.encoder import extract_features

    fe = AutoFeatureExtractor.from_pretrained(tiny_model_dir)
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (16000, 37123, 52000)]
    full = extract_features(fe, arrays, own_length=False)  # the stock 30 s window
    for i, a in enumerate(arrays):
        feats, valid = clip_features(fe, a)
        assert valid == full.valid_frames[i]
        n = min(valid + 4, feats.shape[-1])
        assert n >= valid + 4
        torch.testing.assert_close(feats[:, :n], full.input_features[i, :, :n], rtol=0, atol=1e-6)


def test_label_mask_covers_prompt_and_audio(tiny_model_dir, tmp_path):
    from transformers import AutoFeatureExtractor

    from lm_eval_audio.arch.encoder import audio_token_count

    tok = _tokenizer(tiny_model_dir)
    fe = AutoFeatureExtractor.from_pretrained(tiny_model_dir)
    clip = _tone(tmp_path / "a.wav", 1.3)
    ex = Example(name="ex", prompt="<|audio_bos|><|AUDIO|><|audio_eos|>Answer:", answer=" 1", clips=[str(clip)])
    batch = AudioSFTCollator(tok, fe)([ex, Example(name="t", prompt="Answer:", answer=" A B", clips=[])])
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    audio_id = tok.convert_tokens_to_ids("<|AUDIO|>")
    n_audio = audio_token_count(batch["valid_frames"][0].item())
    assert int((ids[0] == audio_id).sum()) == n_audio
    answer = tok.encode(" 1")
    n = int(mask[0].sum())
    assert labels[0, n - len(answer): n].tolist() == answer
    assert (labels[0, : n - len(answer)] == IGNORE_INDEX).all()  # prompt and every audio position
    assert (labels[0, ids[0] == audio_id] == IGNORE_INDEX).all()
    # Right padding of the shorter row: padded positions carry no loss and no attention.
    n1 = int(mask[1].sum())
    assert (labels[1, n1:] == IGNORE_INDEX).all() and (mask[1, n1:] == 0).all()
    assert labels[1, :n1].tolist() == [IGNORE_INDEX] * (n1 - len(tok.encode(" A B"))) + tok.encode(" A B")


def test_tokenize_rejects_clip_count_mismatch(tiny_model_dir):
    tok = _tokenizer(tiny_model_dir)
    ex = Example(name="doc 7", prompt="<|audio_bos|><|AUDIO|><|audio_eos|>Q:", answer=" 1", clips=["a", "b"])
    with pytest.raises(ValueError, match="doc 7: prompt has 1"):
        tokenize_example(tok, ex, [10, 12], tok.convert_tokens_to_ids("<|AUDIO|>"))


# -- data routes --------------------------------------------------------------------------------


def test_task_examples_match_the_harness_requests(tiny_model_dir, tone_task_dir):
    """Same prompt, answer and token ids as the qwen2audio model builds for the gold request,
    and the training loss equals the harness's log-likelihood of the answer."""
    from lm_eval.api.instance import Instance

    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

    from transformers import AutoProcessor

    from lm_eval_audio.models.requests import prepare

    tok = _tokenizer(tiny_model_dir)
    data = DataConfig(task="ft_tones", split="test", include_path=[str(tone_task_dir)])
    examples = task_examples(data, AutoProcessor.from_pretrained(tiny_model_dir))
    assert len(examples) == 24
    ex = examples[4]  # label 1
    assert ex.answer == " 1" and ex.prompt.startswith("<|audio_bos|><|AUDIO|><|audio_eos|>Classify")

    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=1, device="cpu")
    req = Instance(request_type="loglikelihood", doc={}, idx=0, metadata=("ft_tones", 4, 1),
                   arguments=("<audio>Classify the pitch range of the singing: answer 0 for narrow, 1 for moderate "
                              "and 2 for wide. Answer:", " 1", {"audio": ex.clips}))
    prepared = prepare(lm, [req], lm.fmt, mode=lm.mode, generation=False)[0]
    assert prepared.prompt == ex.prompt
    assert encode_pair(tok, ex.prompt, ex.answer) == (prepared.context_ids, prepared.continuation_ids)

    from transformers import AutoFeatureExtractor

    from finetune.config import LoraConfigSection, ModelConfig
    from finetune.modeling import AudioLMForTraining, apply_lora, load_base

    base, tok2, fe = load_base(ModelConfig(pretrained=str(tiny_model_dir)))
    model = AudioLMForTraining(apply_lora(base, LoraConfigSection(dropout=0.0)), lm.placeholder_id).eval()
    batch = AudioSFTCollator(tok2, AutoFeatureExtractor.from_pretrained(tiny_model_dir))([ex])
    with torch.no_grad():
        loss = model(**batch)["loss"].item()
    (ll, _), = lm.loglikelihood([req], disable_tqdm=True)
    assert loss == pytest.approx(-ll / len(prepared.continuation_ids), abs=1e-5)


def test_jsonl_examples(tiny_model_dir, tmp_path):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_model_dir)
    _tone(tmp_path / "clip.wav", 1.0)
    rec = {"messages": [{"role": "user", "content": "<audio>What is the range?"},
                        {"role": "assistant", "content": "wide"}], "audios": ["clip.wav"]}
    sharegpt = {"conversations": [{"from": "human", "value": "Range?"}, {"from": "gpt", "value": "narrow"}],
                "audios": [str(tmp_path / "clip.wav")]}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(rec) + "\n\n" + json.dumps(sharegpt) + "\n")
    a, b = jsonl_examples(path, tok)
    assert "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhat is the range?" in a.prompt
    assert a.prompt.endswith("<|im_start|>assistant\n")
    assert a.answer == "wide<|im_end|>" and a.clips == [str(tmp_path / "clip.wav")]
    assert b.prompt.count("<|AUDIO|>") == 1 and b.answer == "narrow<|im_end|>"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rec, "audios": ["missing.wav"]}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 1: audio file not found"):
        jsonl_examples(bad, tok)
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(ValueError, match="line 1: the last message must be the assistant"):
        jsonl_examples(bad, tok)


# -- a short run through the command line -----------------------------------------------------


def _pitch_jsonl(folder: Path) -> Path:
    """Four tone clips and a JSONL of pitch answers over them (ms-swift's layout)."""
    for i in range(4):
        _tone(folder / f"c{i}.wav", 0.8, f0=300 + 200 * i)
    path = folder / "train.jsonl"
    path.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": "<audio>Pitch?"},
                                 {"role": "assistant", "content": str(i % 3)}], "audios": [f"c{i}.wav"]}) + "\n"
        for i in range(4)))
    return path


def test_jsonl_run_writes_adapter_and_merges(tiny_model_dir, tmp_path):
    from finetune.cli import main
    from finetune.merge import merge_adapter

    path = _pitch_jsonl(tmp_path)
    out = tmp_path / "out"
    assert main(["--pretrained", str(tiny_model_dir), "--jsonl", str(path), "--output-dir", str(out),
                 "--max-steps", "2", "--batch-size", "2", "--save-steps", "1", "--no-eval",
                 "--set", "lora.modules_to_save=[multi_modal_projector]"]) == 0
    for name in ("adapter_model.safetensors", "adapter_config.json", "finetune_config.yaml", "trainer_state.json",
                 "train_results.json", "finetune_results.json"):
        assert (out / name).is_file(), name
    assert (out / "checkpoint-2" / "adapter_model.safetensors").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2

    merged = merge_adapter(out, tmp_path / "merged")
    import transformers

    m = transformers.Qwen2AudioForConditionalGeneration.from_pretrained(merged)
    assert not any("lora" in n for n, _ in m.named_parameters())

    with pytest.raises(ValueError, match="not a PEFT adapter folder"):
        merge_adapter(tmp_path, tmp_path / "m2")


def test_every_step_keeps_its_adapter_and_its_training_log(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from finetune.cli import main
    from lm_eval_audio.trust.training import adapter_at_step, adapter_training

    path = _pitch_jsonl(tmp_path)
    out = tmp_path / "out"
    assert main(["--pretrained", str(tiny_model_dir), "--jsonl", str(path), "--output-dir", str(out),
                 "--max-steps", "3", "--batch-size", "1", "--save-steps", "50", "--no-eval",
                 "--set", "training.adapter_snapshots=every", "--set", "training.logging_steps=1"]) == 0
    steps = sorted(p.name for p in (out / "steps").iterdir())
    assert steps == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]  # nothing half-written left behind
    two = adapter_at_step(out, 2)
    weights = [load_file(str(p / "adapter_model.safetensors")) for p in (two, out)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # step 2 is not the final adapter
    record = adapter_training(str(two))
    assert record["step"] == 2 and record["max_steps"] == 3
    assert record["run"]["step"] == 3 and [s for s, _ in record["run"]["loss_log"]] == [1, 2, 3]
    assert adapter_training(str(out))["step"] == 3 and adapter_training(None) is None
