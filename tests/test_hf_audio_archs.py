"""`--model hf-audio` on every architecture that runs here, each on its tiny checkpoint: scores
equal transformers' own forward, generation does not depend on the batch, the clip limit is the
feature extractor's, and controls, `verify_batch` and the cache identity work as for Qwen2-Audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from arch_cases import RUNNABLE, naive_logprob, processor_inputs
from audio_requests import LETTERS
from audio_requests import clip as _clip
from audio_requests import gen as _gen
from audio_requests import ll as _ll
from lm_eval.api.model import CachingLM

from lm_eval_audio.arch.facts import facts
from lm_eval_audio.audio import wav_base64
from lm_eval_audio.models.audio_inputs import OwnLengthAudio, processor_features
from lm_eval_audio.models.forward import _audio_rows, _pad, prefill_alone
from lm_eval_audio.models.hf_audio import HFAudioLM
from lm_eval_audio.models.requests import prepare

CLIPS = [_clip(2.0, 1), _clip(5.5, 2), _clip(11.0, 3)]

# The longest clip each feature extractor keeps (None: no limit, longer clips are chunked or padded).
MAX_SECONDS = {"qwen2_audio": 30.0, "audioflamingo3": 600.0, "qwen2_5_omni": 30.0, "qwen3_omni_moe": None,
               "granite_speech": None, "phi4_multimodal": None, "gemma3n": 30.0, "voxtral": None,
               "glmasr": 655.0, "musicflamingo": 1200.0, "qwen3_asr": None, "gemma4": 30.0}


@pytest.fixture(scope="module")
def lms(arch_checkpoint):
    """arch -> HFAudioLM at batch 3, loaded once per module on first use."""
    loaded = {}

    def get(arch: str) -> HFAudioLM:
        if arch not in loaded:
            loaded[arch] = HFAudioLM(pretrained=str(arch_checkpoint(arch)), batch_size=3)
        return loaded[arch]

    return get


def _requests():
    reqs = [_ll("Question: which option? Answer:", x, [c], doc_id=d) for d, c in enumerate(CLIPS) for x in LETTERS]
    reqs += [_ll("Question: which option? Answer:", " the long answer", [CLIPS[0]], doc_id=0),
             _ll("Tell me:", " two words", [CLIPS[1]], doc_id=1)]
    reqs += [_ll("A text-only question. Answer:", x, doc_id=9) for x in (" A", " a longer one")]
    return reqs


@pytest.mark.parametrize("arch", RUNNABLE)
def test_loglikelihood_equals_naive_forward(arch, lms):
    lm = lms(arch)
    assert lm.model_type == arch and lm.kv_reuse is facts(arch).kv_reuse
    requests = _requests()
    for req, (logprob, _) in zip(requests, lm.loglikelihood(requests, disable_tqdm=True)):
        arrays = [c["array"] for c in req.args[2]["audio"]] if len(req.args) > 2 else []
        assert logprob == pytest.approx(naive_logprob(lm, *req.args[:2], arrays), abs=1e-4), (arch, req.args[:2])


@pytest.mark.parametrize("arch", [a for a in RUNNABLE if facts(a).kv_reuse])
def test_kv_reuse_gives_the_whole_rows_scores(arch, lms, arch_checkpoint):
    whole = HFAudioLM(pretrained=str(arch_checkpoint(arch)), batch_size=3, kv_reuse=False)
    requests = [r for r in _requests() if len(r.args) > 2]
    np.testing.assert_allclose([s for s, _ in lms(arch).loglikelihood(requests, disable_tqdm=True)],
                               [s for s, _ in whole.loglikelihood(requests, disable_tqdm=True)], atol=1e-4)


@pytest.mark.parametrize("arch", RUNNABLE)
def test_generation_identical_at_batch_1_and_8(arch, arch_checkpoint):
    # clips of different lengths: a batch pads their prompts (and, without an own-length encoder,
    # may pad their audio) to the longest; none of it may change a transcript
    requests = [_gen(f"Transcribe clip {i}:", [_clip(s, i)], doc_id=i, max_gen_toks=6)
                for i, s in enumerate([1.0, 2.5, 4.0, 6.0, 3.0, 0.7, 5.0, 1.8])]
    lm = HFAudioLM(pretrained=str(arch_checkpoint(arch)), batch_size=1)
    one = lm.generate_until(requests, disable_tqdm=True)
    lm.batch_size_per_gpu = 8
    assert lm.generate_until(requests, disable_tqdm=True) == one


@pytest.mark.parametrize("arch", [a for a in RUNNABLE if facts(a).own_length_encoder])
def test_batched_generation_prefills_each_prompt_alone(arch, lms):
    """A generation batch runs each prompt alone on its own length, then continues all of them
    together from their caches left-padded into one: the next-token logits of every row equal
    that prompt's own forward, unpadded, to 1e-4."""
    lm = lms(arch)
    requests = [_gen(f"Transcribe clip {i}:", [_clip(s, 70 + i)], doc_id=i) for i, s in enumerate([0.8, 6.5, 3.0])]
    prepared = prepare(lm, requests, lm.fmt, mode=lm.mode, generation=True, indices=[0, 1, 2])
    rows, audio = _audio_rows(lm, [(r.context_ids, r.clip_keys, r.name) for r in prepared], lm._decode(prepared))
    ids, mask = _pad(rows, lm.pad_id, lm.device, left=True)
    embeds = audio.inputs(ids, mask)["inputs_embeds"]
    lengths = [len(r) for r in rows]
    assert len(set(lengths)) == 3
    with torch.no_grad():
        cache = prefill_alone(lm.core, embeds, lengths)
        assert cache is not None and cache.get_seq_length() == embeds.shape[1] - 1
        positions = torch.tensor(lengths)[:, None] - 1
        batched = lm.core(inputs_embeds=embeds[:, -1:], attention_mask=mask, position_ids=positions, cache=cache).logits
        for i, n in enumerate(lengths):
            alone = lm.core(inputs_embeds=embeds[i: i + 1, embeds.shape[1] - n:]).logits[0, -1]
            torch.testing.assert_close(batched[i, -1], alone, atol=1e-4, rtol=0, msg=f"{arch}, row {i}")


@pytest.mark.parametrize("arch", [a for a in RUNNABLE if facts(a).own_length_encoder])
def test_own_length_encoder_equals_the_models_own_audio_path(arch, lms):
    """The embeddings that the language model gets, from the own-length encoder and from the
    model's own forward on the processor's 30 s windows, agree at every position to 1e-4."""
    lm = lms(arch)
    assert lm.encoder_own_length and isinstance(lm.audio, OwnLengthAudio)
    seconds = [0.7, 2.0, 11.0] + ([35.0] if (lm.max_audio_seconds or 0) > 30 else [])  # 35 s: two windows
    decoder = lm.core.model.language_model
    for i, s in enumerate(seconds):
        array = _clip(s, 80 + i)["array"]
        inputs = processor_inputs(lm, " Q:", [array])
        seen = {}
        hook = decoder.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
        try:
            with torch.no_grad():
                lm.core(**inputs)
        finally:
            hook.remove()
        features, count = processor_features(lm.processor, lm.fmt.placeholder, array, lm.sampling_rate,
                                              own_length=True)
        assert s > 30 or features.input_features.shape[-1] < 3000, (arch, s)  # the cost follows the clip
        with torch.no_grad():
            audio = lm.audio.encode(["clip"], {"clip": array})
            ours = audio.embed(inputs["input_ids"])
        assert audio.counts == [count], (arch, s)
        torch.testing.assert_close(ours, seen["inputs_embeds"], atol=1e-4, rtol=0, msg=f"{arch}, {s} s")


@pytest.mark.parametrize("arch", RUNNABLE)
def test_long_audio_limit_is_the_feature_extractors(arch, lms):
    lm = lms(arch)
    assert lm.max_audio_seconds == MAX_SECONDS[arch]
    extractor = getattr(lm.processor, "feature_extractor", None) or lm.processor.audio_processor
    if getattr(lm.processor, "max_audio_len", None):  # the Audio Flamingo family: 30 s windows up to this
        assert lm.processor.max_audio_len == lm.max_audio_seconds
    elif MAX_SECONDS[arch] is None:  # the processor keeps any length: 40 s get more positions than 30 s
        silence = {str(s): np.zeros(16000 * s, dtype=np.float32) for s in (30, 40)}
        thirty, forty = lm.audio.encode(["30", "40"], silence).counts
        assert forty > thirty
    elif getattr(extractor, "n_samples", None):
        assert extractor.n_samples / extractor.sampling_rate == lm.max_audio_seconds
    else:  # Gemma 3n and 4: the extractor's call truncates to its max_length samples by default
        features = extractor([np.zeros(16000 * 40, dtype=np.float32)], return_tensors="np")["input_features"]
        assert features.shape[1] * extractor.hop_length == pytest.approx(lm.max_audio_seconds * 16000, abs=512)
    if MAX_SECONDS[arch] is not None and MAX_SECONDS[arch] <= 30:  # longer clips are cut, with a count
        lm.loglikelihood([_ll("Q:", " A", [_clip(MAX_SECONDS[arch] + 1, 7)], doc_id=3)], disable_tqdm=True)
        assert lm.truncated_clips >= 1


@pytest.mark.parametrize("arch", RUNNABLE)
def test_controls_verify_batch_and_cache_identity(arch, arch_checkpoint, lms, tmp_path):
    path = str(arch_checkpoint(arch))
    clips = [_clip(1.0 + 0.5 * d, 60 + d) for d in range(4)]
    reqs = [_ll("Which one? Answer:", x, [c], doc_id=d, task="probe") for d, c in enumerate(clips) for x in LETTERS[:2]]
    real = np.array([s for s, _ in lms(arch).loglikelihood(reqs, disable_tqdm=True)]).reshape(4, 2)
    shuffle = HFAudioLM(pretrained=path, batch_size=3, audio_control="shuffle", verify_batch=3)
    shuffled = np.array([s for s, _ in shuffle.loglikelihood(reqs, disable_tqdm=True)]).reshape(4, 2)
    donors = shuffle.control.donors("probe")
    for d, donor in donors.items():
        np.testing.assert_allclose(shuffled[d], real[donor], atol=1e-4)
    info = shuffle.get_model_info()
    assert info["verify_batch_loglikelihood_checked"] == 3 and info["verify_batch_max_abs_diff"] < 1e-4
    assert shuffle.cache_identity() != lms(arch).cache_identity()
    silence = HFAudioLM(pretrained=path, batch_size=3, audio_control="silence")
    cached = CachingLM(silence, str(tmp_path / "cache.db"))
    quiet = np.array([s for s, _ in cached.loglikelihood(reqs)]).reshape(4, 2)
    assert np.abs(quiet - real).max() > 1e-5  # the model heard the difference
    calls = silence.audio_encoder_calls
    assert [s for s, _ in cached.loglikelihood(reqs)] == quiet.ravel().tolist() and silence.audio_encoder_calls == calls


@pytest.mark.parametrize("arch", RUNNABLE)
def test_chat_template_renders_the_clip_as_the_processor_does(arch, lms):
    lm = lms(arch)
    context = lm.apply_chat_template([{"role": "user", "content": "What is said?"}])
    (chat,) = lm.loglikelihood([_ll(context, " A", [CLIPS[0]])], disable_tqdm=True)
    assert np.isfinite(chat[0])
    if lm.fmt.codec is None:  # the processor itself on the rendered chat (clip item + text)
        rendered = lm.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "audio", "audio": "x.wav"}, {"type": "text", "text": "What is said?"}]}],
            tokenize=False, add_generation_prompt=True)
        full = lm.processor(text=[rendered + " A"], audio=[CLIPS[0]["array"]], sampling_rate=lm.sampling_rate,
                            return_tensors="pt")
        prompt = lm.processor(text=[rendered], audio=[CLIPS[0]["array"]], sampling_rate=lm.sampling_rate,
                              return_tensors="pt")
    else:  # the backend's own chat encoding of the clip and the text
        turn = [{"role": "user", "content": [{"type": "audio", "base64": wav_base64(CLIPS[0]["array"])},
                                             {"type": "text", "text": "What is said?"}]}]
        prompt = lm.processor.apply_chat_template(turn, tokenize=True, return_dict=True, return_tensors="pt")
        ids = prompt["input_ids"][0].tolist() + lm.tokenizer.encode(" A", add_special_tokens=False)
        full = dict(prompt, input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    # lm-eval scores the context's trailing whitespace ("assistant\n") with the continuation
    n = len(lm._encode_pair(context, " A")[1])
    with torch.no_grad():
        logits = lm.core(**full).logits[0, -n - 1: -1].float()
    expected = torch.log_softmax(logits, -1).gather(-1, full["input_ids"][0, -n:, None]).sum().item()
    assert chat[0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("bad", [0, -5])
def test_bad_clip_limit_is_a_clear_error_where_the_model_has_none(arch_checkpoint, bad):
    # qwen3_asr's processor keeps clips of any length (no limit to name in the message).
    assert MAX_SECONDS["qwen3_asr"] is None
    if "qwen3_asr" not in RUNNABLE:
        pytest.skip("qwen3_asr does not run here")
    with pytest.raises(ValueError, match=rf"^hf-audio: max_audio_seconds must be a positive number of seconds, got {bad}$"):
        HFAudioLM(pretrained=str(arch_checkpoint("qwen3_asr")), max_audio_seconds=bad)
