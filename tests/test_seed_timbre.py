"""The seed's timbre protocol and its fine-tune, on the generated stand-in (which has the real
dataset's splits), offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from lm_eval_audio.files import tasks_dir

REPO = Path(__file__).resolve().parents[1]
SEED_TASKS = ["timbre_range_seed", "timbre_range_seed_ft", "timbre_range_seed_validation",
              "timbre_range_seed_ft_validation"]
BASELINE = ("Listen the audio and classify the timbre range in one of 3 numbers: answer 0 for narrow, "
            "1 for moderate and 2 for wide. Answer ONLY with a number")
FINETUNE = ("Listen the audio and classify the timbre range: answer 0 for narrow, 1 for moderate and 2 "
            "for wide. Answer only with a number")


@pytest.fixture(scope="module")
def seed_tasks(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path_factory.mktemp("cache")))
        tm = TaskManager(include_defaults=False, include_path=str(tasks_dir()),
                         metadata={"timbre_range_source": "synth"})
        yield tm.load(SEED_TASKS)["tasks"]


def test_seed_tasks_score_the_first_200_train_items_and_validation(seed_tasks):
    from lm_eval_audio.data import timbre

    synth = timbre.load_synth()
    first200 = synth["train"]["id"][:200]
    for name in ("timbre_range_seed", "timbre_range_seed_ft"):
        task = seed_tasks[name]
        assert [d["id"] for d in task.eval_docs] == first200
        assert task.config.metadata["evaluation_split"] == "train" and task.config.metadata["item_key"] == "id"
    for name in ("timbre_range_seed_validation", "timbre_range_seed_ft_validation"):
        assert [d["id"] for d in seed_tasks[name].eval_docs] == synth["validation"]["id"]
    assert seed_tasks["timbre_range_seed_ft"].config.metadata["before_task"] == "timbre_range_seed"
    doc = seed_tasks["timbre_range_seed"].eval_docs[0]
    assert seed_tasks["timbre_range_seed"].doc_to_text(doc) == "<audio>" + BASELINE
    assert seed_tasks["timbre_range_seed_ft"].doc_to_text(doc) == "<audio>" + FINETUNE
    assert seed_tasks["timbre_range_seed"].config.generation_kwargs == {"until": [], "max_gen_toks": 16,
                                                                        "do_sample": False}


def test_prompts_are_the_seed_protocol():
    text = (REPO / "tests" / "data" / "SEED_PROTOCOL.md").read_text(encoding="utf-8")
    assert f"`{BASELINE}`" in text and f"`{FINETUNE}`" in text


def test_strict_scoring_is_the_raw_digit():
    from lm_eval_audio.filters.label import INVALID, StrictLabelFilter

    out = StrictLabelFilter(n_labels=3).apply([["2"], [" 2"], ["2."], ["wide"], ["3"]], [{}] * 5)
    assert [o[0] for o in out] == ["2", INVALID, INVALID, INVALID, INVALID]


def test_seed_finetune_config_mirrors_the_seeds_ms_swift_run(seed_tasks, tiny_model_dir):
    from transformers import AutoProcessor

    from finetune.config import LM_TARGETS, load_config
    from finetune.data import load_examples

    cfg = load_config(REPO / "finetune" / "configs" / "timbre_seed.yaml",
                      {"data.metadata": {"timbre_range_source": "synth"}})
    t, lora = cfg.training, cfg.lora
    assert (t.epochs, t.batch_size, t.gradient_accumulation_steps, cfg.model.dtype) == (3, 1, 4, "float32")
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules, lora.modules_to_save) == (8, 32, 0.05, LM_TARGETS, [])
    assert (t.learning_rate, t.lr_scheduler) == (1e-4, "cosine")
    assert cfg.data.task == "timbre_range_seed_ft" and cfg.data.apply_chat_template
    examples = load_examples(cfg.data, AutoProcessor.from_pretrained(tiny_model_dir))
    docs = seed_tasks["timbre_range_seed_ft"].eval_docs
    assert len(examples) == 200
    assert [e.answer for e in examples] == [str(d["label"]) for d in docs]  # the digit, no leading space
    assert all(e.prompt.endswith(FINETUNE + "<|im_end|>\n<|im_start|>assistant\n") for e in examples)
    assert all(e.prompt.count("<|AUDIO|>") == 1 for e in examples)
