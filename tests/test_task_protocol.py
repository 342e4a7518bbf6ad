"""What made a task's data is in its results: the source, a hash of the items scored and, for
spoken tasks, the TTS settings, which a run sets through --metadata."""

from __future__ import annotations

import pytest
from lm_eval_audio.files import tasks_dir


@pytest.fixture(scope="module")
def two_voices(tiny_model_dir, tmp_path_factory):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=4)
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LM_EVAL_AUDIO_TTS_CACHE", str(tmp_path_factory.mktemp("tts")))
        mp.setenv("LM_EVAL_AUDIO_CACHE", str(tmp_path_factory.mktemp("cache")))
        for voice in ("en-us", "en+f3"):
            meta = {"tts_voice": voice, "timbre_range_source": "synth"}
            runs[voice] = simple_evaluate(
                model=lm, tasks=["spoken_mmlu_seed_mc", "mmlu_seed_mc", "timbre_range_seed"], limit=2,
                log_samples=True, bootstrap_iters=0, metadata=meta,
                task_manager=TaskManager(include_defaults=False, include_path=str(tasks_dir()), metadata=meta))
    return runs


def test_spoken_tasks_record_the_runs_tts_settings(two_voices):
    protocols = {v: r["configs"]["spoken_mmlu_seed_mc"]["metadata"]["protocol"] for v, r in two_voices.items()}
    for voice, p in protocols.items():
        assert p["tts"]["backend"] == "espeak" and p["tts"]["voice"] == voice
        assert p["tts"]["engine"].startswith("espeak-ng ") and p["tts"]["rate"] == 175
        assert p["source"] == "embedded seed items (seed_mmlu.jsonl)" and p["items_scored"] == 2
    # The same items, spoken by two voices: one hash of the items, two different clips.
    assert protocols["en-us"]["items_sha256"] == protocols["en+f3"]["items_sha256"]
    clips = {v: r["samples"]["spoken_mmlu_seed_mc"][0]["arguments"][0][2]["audio"][0]["sha256"]
             for v, r in two_voices.items()}
    assert clips["en-us"] != clips["en+f3"]


def test_every_task_records_its_source_and_items(two_voices):
    from lm_eval_audio.data._common import items_sha256
    from lm_eval_audio.data.seed_mmlu import embedded_items

    run = two_voices["en-us"]
    text = run["configs"]["mmlu_seed_mc"]["metadata"]["protocol"]
    assert "tts" not in text and text["items_scored"] == 2
    assert text["items_sha256"] == items_sha256(embedded_items()[:2])
    timbre = run["configs"]["timbre_range_seed"]["metadata"]["protocol"]
    assert timbre["source"].startswith("timbre_range_synth v1-") and timbre["split"] == "train"


def test_unknown_tts_setting_is_named():
    from lm_eval_audio.tts import TTSConfig

    with pytest.raises(ValueError, match=r"unknown TTS setting\(s\) \['tts_speed'\]"):
        TTSConfig.from_run_metadata({"tts_speed": 2})
    assert TTSConfig.from_run_metadata({"tts_backend": "openai"}).voice == "alloy"
