"""The qwen2audio model class: exact scores, one encoding per clip, batching, cache, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from audio_requests import LETTERS
from audio_requests import clip as _clip
from audio_requests import gen as _gen
from audio_requests import ll as _ll
from lm_eval.api.instance import Instance
from lm_eval.api.model import CachingLM
from transformers import AutoProcessor

from lm_eval_audio.audio import AudioError
from lm_eval_audio.models.qwen2audio import Qwen2AudioLM
from lm_eval_audio.arch.prompts import PromptFormat, build_prompt, render_chat

BASE_CLIP = "<|audio_bos|><|AUDIO|><|audio_eos|>"  # Qwen2-Audio's clip outside a chat

@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=4)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return AutoProcessor.from_pretrained(tiny_model_dir)


def _naive_logprob(lm, processor, context_prompt, continuation, arrays):
    """One full forward of transformers' own model on processor inputs, per request."""
    model = lm.core
    if arrays:
        kw = dict(audio=arrays, sampling_rate=16000, return_tensors="pt")
        full = processor(text=[context_prompt + continuation], **kw)
        ctx = processor(text=[context_prompt], **kw)
    else:
        full = processor.tokenizer([context_prompt + continuation], return_tensors="pt")
        ctx = processor.tokenizer([context_prompt], return_tensors="pt")
    n = full["input_ids"].shape[1] - ctx["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**full).logits[0, -n - 1 : -1].float()
    target = full["input_ids"][0, -n:]
    return torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum().item()


def test_loglikelihood_equals_naive_forward_and_encodes_each_clip_once(lm, processor):
    clips = [_clip(2.0, 1), _clip(5.5, 2), _clip(11.0, 3)]
    requests = [_ll("Question: which option? Answer:", letter, [c], doc_id=d) for d, c in enumerate(clips) for letter in LETTERS]
    requests += [_ll("Question: which option? Answer:", " the long answer", [clips[0]], doc_id=0)]
    requests += [_ll("A text-only question. Answer:", letter, doc_id=9) for letter in LETTERS]
    before = lm.audio_encoder_calls
    results = lm.loglikelihood(requests, disable_tqdm=True)
    assert lm.audio_encoder_calls - before == len(clips)  # 4 letters (+1 long answer) = 1 encoding
    for req, (logprob, _) in zip(requests, results):
        arrays = [c["array"] for c in req.args[2]["audio"]] if len(req.args) > 2 else []
        prompt = BASE_CLIP * len(arrays) + req.args[0]
        expected = _naive_logprob(lm, processor, prompt, req.args[1], arrays)
        assert logprob == pytest.approx(expected, abs=1e-4)


def test_encoder_switch_gives_same_scores(tiny_model_dir):
    requests = [_ll("Answer:", letter, [_clip(3.0, 5)]) for letter in LETTERS]
    own = Qwen2AudioLM(pretrained=str(tiny_model_dir)).loglikelihood(requests, disable_tqdm=True)
    full = Qwen2AudioLM(pretrained=str(tiny_model_dir), encoder_own_length=False).loglikelihood(requests, disable_tqdm=True)
    np.testing.assert_allclose([r[0] for r in own], [r[0] for r in full], atol=1e-5)


def test_generation_identical_at_batch_1_and_8(tiny_model_dir):
    requests = [_gen(f"Transcribe clip {i}:", [_clip(s, i)], doc_id=i) for i, s in enumerate([1.0, 2.5, 4.0, 6.0, 3.0, 7.5, 1.5, 2.0, 5.0])]
    requests += [_gen("Text only" + "!" * i + ":", doc_id=20 + i) for i in range(3)]
    out1 = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=1).generate_until(requests, disable_tqdm=True)
    out8 = Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=8).generate_until(requests, disable_tqdm=True)
    assert out1 == out8
    assert len(set(out1)) > 1  # different clips and prompts give different outputs


def test_generation_matches_transformers_generate(lm, processor):
    clip = _clip(3.0, 11)
    (ours,) = lm.generate_until([_gen("Transcribe:", [clip], max_gen_toks=12)], disable_tqdm=True)
    inputs = processor(text=[BASE_CLIP + "Transcribe:"], audio=[clip["array"]], sampling_rate=16000, return_tensors="pt")
    ids = lm.core.generate(**inputs, max_new_tokens=12, do_sample=False)
    expected = processor.tokenizer.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert ours == expected.split("<|im_end|>")[0]


def test_stop_sequences_cut_generation(lm):
    free = lm.generate_until([_gen("Transcribe:", [_clip(2.0, 4)], max_gen_toks=12)], disable_tqdm=True)[0]
    assert len(free) > 2
    stop = free[1:3]
    req = Instance("generate_until", {}, ("Transcribe:", {"until": [stop], "max_gen_toks": 12, "do_sample": False}, {"audio": [_clip(2.0, 4)]}), idx=0, metadata=("t", 0, 1))
    (cut,) = lm.generate_until([req], disable_tqdm=True)
    assert cut == free.split(stop)[0]


def test_modes(tiny_model_dir):
    clip = _clip(2.0, 7)
    context = "Which letter? Answer:"
    text_lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), mode="text")
    audio_lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), mode="audio")
    auto_lm = Qwen2AudioLM(pretrained=str(tiny_model_dir))
    with_audio = [_ll(context, " A", [clip])]
    # text mode ignores the audio: same as the text-only request
    assert text_lm.loglikelihood(with_audio, disable_tqdm=True) == auto_lm.loglikelihood([_ll(context, " A")], disable_tqdm=True)
    # audio mode drops the text: same as an audio request with an empty prompt
    audio_only = audio_lm.loglikelihood(with_audio, disable_tqdm=True)[0][0]
    assert audio_only == pytest.approx(auto_lm.loglikelihood([_ll("<audio>", " A", [clip])], disable_tqdm=True)[0][0], abs=1e-5)
    assert audio_only != pytest.approx(auto_lm.loglikelihood(with_audio, disable_tqdm=True)[0][0], abs=1e-4)
    with pytest.raises(ValueError, match="mode=audio"):
        audio_lm.loglikelihood([_ll(context, " A")], disable_tqdm=True)


def test_prompt_placement(processor):
    fmt = PromptFormat.from_processor(processor)
    assert fmt.base_clip == BASE_CLIP  # read from the processor, not written here
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is said?"}]
    chat = render_chat(processor, history)
    plain = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is said?<|im_end|>\n<|im_start|>assistant\n"
    assert build_prompt("Say <audio> now", 1, fmt) == f"Say {BASE_CLIP} now"
    assert build_prompt("What is said?", 2, fmt) == BASE_CLIP * 2 + "What is said?"
    assert build_prompt(chat, 0, fmt) == plain
    assert build_prompt(chat, 1, fmt) == plain.replace("user\n", f"user\nAudio 1: {BASE_CLIP}\n")
    two = render_chat(processor, [{"role": "user", "content": "First <audio> then <audio>?"}])
    assert build_prompt(two, 2, fmt) == processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "First "}, {"type": "audio", "audio": "a.wav"},
                                      {"type": "text", "text": " then "}, {"type": "audio", "audio": "b.wav"},
                                      {"type": "text", "text": "?"}]}], tokenize=False, add_generation_prompt=True)
    # An audio-only user turn exactly as the processor's chat template renders one.
    audio_only = processor.apply_chat_template(
        [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
         {"role": "user", "content": [{"type": "audio", "audio": "a.wav"}]}], tokenize=False, add_generation_prompt=True)
    assert build_prompt(chat, 1, fmt, mode="audio") == audio_only
    assert build_prompt("Say <audio> now", 1, fmt, mode="text") == "Say  now"
    assert build_prompt("Hi", 1, fmt, mode="audio") == BASE_CLIP
    with pytest.raises(ValueError, match="2 <audio> placeholders for 1"):
        build_prompt("<audio><audio>", 1, fmt, name="doc 4")


def test_bad_audio_names_the_document(lm):
    empty = {"array": np.zeros(0, np.float32), "sampling_rate": 16000}
    with pytest.raises(AudioError, match="my_task doc 42.*empty"):
        lm.loglikelihood([_ll("Q:", " A", [empty], doc_id=42, task="my_task")], disable_tqdm=True)
    with pytest.raises(AudioError, match="not found"):
        lm.generate_until([_gen("Q:", ["/no/such/clip.wav"])], disable_tqdm=True)


def test_long_audio_policy(tiny_model_dir, caplog):
    long_clip = _clip(31.0, 1)
    strict = Qwen2AudioLM(pretrained=str(tiny_model_dir), long_audio="error")
    with pytest.raises(AudioError, match="31.0 s, over the 30 s limit"):
        strict.loglikelihood([_ll("Q:", " A", [long_clip])], disable_tqdm=True)
    lenient = Qwen2AudioLM(pretrained=str(tiny_model_dir))
    with caplog.at_level(logging.WARNING):
        got = lenient.loglikelihood([_ll("Q:", " A", [long_clip], doc_id=d) for d in range(2)], disable_tqdm=True)
    assert "1 audio clip(s) were longer than 30 s and were truncated" in caplog.text
    cut = {"array": long_clip["array"][: 16000 * 30], "sampling_rate": 16000}
    assert got[0][0] == pytest.approx(lenient.loglikelihood([_ll("Q:", " A", [cut])], disable_tqdm=True)[0][0], abs=1e-6)


def test_request_cache_keys_on_audio_content(lm, tmp_path):
    # Same text prompt, different audio: the cache must not hand one document's answer to the other.
    a, b = _clip(2.0, 100), _clip(2.0, 200)
    cached = CachingLM(lm, str(tmp_path / "cache.db"))
    first = cached.loglikelihood([_ll("Q:", " A", [a], 0), _ll("Q:", " A", [b], 1)])
    assert first[0] != first[1]
    calls = lm.audio_encoder_calls
    again = CachingLM(lm, str(tmp_path / "cache.db")).loglikelihood([_ll("Q:", " A", [b], 1), _ll("Q:", " A", [a], 0)])
    assert again == [first[1], first[0]]
    assert lm.audio_encoder_calls == calls  # served from the cache


@pytest.mark.parametrize("as_dict", [False, True], ids=["path", "path_dict"])
def test_request_cache_sees_a_file_rewritten_in_place(lm, tmp_path, as_dict):
    # A clip named by path: rewriting the file (same path, same size) must not return the old
    # file's answer under --use_cache.
    import os

    import soundfile as sf

    wav = tmp_path / "clip.wav"
    clip = {"path": str(wav)} if as_dict else str(wav)
    db = str(tmp_path / "cache.db")
    sf.write(wav, _clip(2.0, 100)["array"], 16000, subtype="FLOAT")
    old = CachingLM(lm, db).loglikelihood([_ll("Q:", " A", [clip], 0)])
    sf.write(wav, _clip(2.0, 200)["array"], 16000, subtype="FLOAT")
    # A real rewrite comes later than the first write; a test's two writes may share one mtime tick.
    st = os.stat(wav)
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    calls = lm.audio_encoder_calls
    new = CachingLM(lm, db).loglikelihood([_ll("Q:", " A", [clip], 0)])
    assert lm.audio_encoder_calls == calls + 1  # heard again, not served from the cache
    fresh = lm.loglikelihood([_ll("Q:", " A", [_clip(2.0, 200)], 0)], disable_tqdm=True)
    assert new[0][0] == pytest.approx(fresh[0][0], abs=1e-5) and new[0][0] != pytest.approx(old[0][0], abs=1e-5)
    calls = lm.audio_encoder_calls
    assert CachingLM(lm, db).loglikelihood([_ll("Q:", " A", [clip], 0)]) == new  # the new file's answer is cached
    assert lm.audio_encoder_calls == calls


def test_bad_adapter_path(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="adapter directory not found"):
        Qwen2AudioLM(pretrained=str(tiny_model_dir), peft=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no adapter_config.json"):
        Qwen2AudioLM(pretrained=str(tiny_model_dir), peft=str(tmp_path / "empty"))


def test_peft_adapter_is_applied(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2AudioForConditionalGeneration

    base = Qwen2AudioForConditionalGeneration.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(tmp_path / "adapter")
    requests = [_ll("Answer:", letter, [_clip(2.0, 9)]) for letter in LETTERS]
    plain = Qwen2AudioLM(pretrained=str(tiny_model_dir)).loglikelihood(requests, disable_tqdm=True)
    adapted = Qwen2AudioLM(pretrained=str(tiny_model_dir), peft=str(tmp_path / "adapter")).loglikelihood(requests, disable_tqdm=True)
    assert all(abs(p[0] - q[0]) > 1e-4 for p, q in zip(plain, adapted))
    with torch.no_grad():
        merged = peft_model.merge_and_unload()
    from lm_eval_audio.models import qwen2audio as mod

    merged_dir = tmp_path / "merged"
    merged.save_pretrained(merged_dir)
    AutoProcessor.from_pretrained(tiny_model_dir).save_pretrained(merged_dir)
    via_merge = mod.Qwen2AudioLM(pretrained=str(merged_dir)).loglikelihood(requests, disable_tqdm=True)
    np.testing.assert_allclose([r[0] for r in adapted], [r[0] for r in via_merge], atol=1e-4)


def test_text_mode_needs_no_audio_file(tiny_model_dir, tmp_path):
    # mode=text hears no clip: a clip file that is gone changes nothing (nothing hashes it).
    text_lm = Qwen2AudioLM(pretrained=str(tiny_model_dir), mode="text")
    gone = str(tmp_path / "gone.wav")
    context = "Which letter? Answer:"
    assert text_lm.loglikelihood([_ll(context, " A", [gone])], disable_tqdm=True) == \
        text_lm.loglikelihood([_ll(context, " A")], disable_tqdm=True)
