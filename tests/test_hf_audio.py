"""`--model hf-audio`: exact scores against transformers' own forward, KV reuse and whole runs,
parity with `qwen2audio` on the same checkpoint, batch-invariant generation, length handling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from audio_requests import LETTERS
from audio_requests import clip as _clip
from audio_requests import gen as _gen
from audio_requests import ll as _ll

from lm_eval_audio.models.audio_inputs import OwnLengthAudio
from lm_eval_audio.models.hf_audio import HFAudioLM
from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return HFAudioLM(pretrained=str(tiny_model_dir), batch_size=4)


@pytest.fixture(scope="module")
def qwen(tiny_model_dir):
    return Qwen2AudioLM(pretrained=str(tiny_model_dir), batch_size=4)


def _requests():
    # 5.5 s and 5.3 s share a batch (padded); 2 s and 11 s are too far from them to
    clips = [_clip(2.0, 1), _clip(5.5, 2), _clip(11.0, 3), _clip(5.3, 4)]
    reqs = [_ll("Question: which option? Answer:", x, [c], doc_id=d) for d, c in enumerate(clips) for x in LETTERS]
    reqs += [_ll("Question: which option? Answer:", " the long answer", [clips[0]], doc_id=0),
             _ll("Question: which option? Answer:", " two words", [clips[1]], doc_id=1),
             _ll("Say <audio> and then <audio>:", " both of them", [clips[2], clips[0]], doc_id=5)]
    reqs += [_ll("A text-only question. Answer:", x, doc_id=9) for x in LETTERS + [" a longer one"]]
    return reqs


def _naive(lm, request) -> float:
    """One full forward of transformers' own model on the processor's inputs, for one request."""
    processor, model = lm.processor, lm.core
    context, continuation = request.args[:2]
    arrays = [c["array"] for c in request.args[2]["audio"]] if len(request.args) > 2 else []
    if arrays:
        prompt = context.replace("<audio>", lm.fmt.base_clip) if "<audio>" in context else lm.fmt.base_clip * len(arrays) + context
        kw = dict(audio=arrays, sampling_rate=16000, return_tensors="pt")
        full, ctx = processor(text=[prompt + continuation], **kw), processor(text=[prompt], **kw)
    else:
        full = processor.tokenizer([context + continuation], return_tensors="pt")
        ctx = processor.tokenizer([context], return_tensors="pt")
    n = full["input_ids"].shape[1] - ctx["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**full).logits[0, -n - 1: -1].float()
    target = full["input_ids"][0, -n:]
    return torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum().item()


@pytest.mark.parametrize("kv_reuse", [True, False])
def test_loglikelihood_equals_naive_forward(tiny_model_dir, hf, kv_reuse):
    lm = hf if kv_reuse else HFAudioLM(pretrained=str(tiny_model_dir), batch_size=3, kv_reuse=False)
    assert lm.kv_reuse is kv_reuse and lm.model_type == "qwen2_audio"
    requests = _requests()
    results = lm.loglikelihood(requests, disable_tqdm=True)
    for req, (logprob, _) in zip(requests, results):
        assert logprob == pytest.approx(_naive(lm, req), abs=1e-4), req.args[:2]


def test_parity_with_qwen2audio(tiny_model_dir, hf, qwen):
    """qwen2audio is hf-audio by another name: one path, the own-length encoder in both, the same
    scores and transcripts; the stock 30 s window (encoder_own_length=False) agrees to 1e-4."""
    assert isinstance(hf.audio, OwnLengthAudio) and isinstance(qwen.audio, OwnLengthAudio)
    assert hf.encoder_own_length and qwen.encoder_own_length
    requests = _requests()
    ours, theirs = qwen.loglikelihood(requests, disable_tqdm=True), hf.loglikelihood(requests, disable_tqdm=True)
    assert ours == theirs
    stock = HFAudioLM(pretrained=str(tiny_model_dir), batch_size=4, encoder_own_length=False)
    assert not stock.encoder_own_length and stock.cache_identity() != hf.cache_identity()
    window = stock.loglikelihood(requests, disable_tqdm=True)
    np.testing.assert_allclose([r[0] for r in window], [r[0] for r in theirs], atol=1e-4)
    assert [r[1] for r in window] == [r[1] for r in theirs]
    gen = [_gen(f"Transcribe clip {i}:", [_clip(s, i)], doc_id=i) for i, s in enumerate([1.0, 4.0, 9.5, 2.5])]
    gen += [_gen("Text only:", doc_id=30)]
    assert qwen.generate_until(gen, disable_tqdm=True) == hf.generate_until(gen, disable_tqdm=True)


def test_generation_identical_at_batch_1_and_8_and_stops(tiny_model_dir, hf):
    requests = [_gen(f"Transcribe clip {i}:", [_clip(s, i)], doc_id=i) for i, s in enumerate([1.0, 2.5, 4.0, 6.0, 3.0, 7.5, 1.5, 2.0, 5.0])]
    out1 = HFAudioLM(pretrained=str(tiny_model_dir), batch_size=1).generate_until(requests, disable_tqdm=True)
    out8 = HFAudioLM(pretrained=str(tiny_model_dir), batch_size=8).generate_until(requests, disable_tqdm=True)
    assert out1 == out8 and len(set(out1)) > 1
    free = out1[0]
    stop = free[1:3]
    (cut,) = hf.generate_until([_gen("Transcribe clip 0:", [_clip(1.0, 0)], until=[stop])], disable_tqdm=True)
    assert cut == free.split(stop)[0]
    (short,) = hf.generate_until([_gen("Transcribe clip 0:", [_clip(1.0, 0)], max_gen_toks=2)], disable_tqdm=True)
    assert len(hf.tok_encode(short)) <= 2 and free.startswith(short)


def test_chat_template_is_the_processors(hf):
    history = [{"role": "user", "content": "What is said?"}]
    context = hf.apply_chat_template(history)
    (got,) = hf.loglikelihood([_ll(context, " A", [_clip(2.0, 4)])], disable_tqdm=True)
    rendered = hf.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "audio", "audio": "x.wav"}, {"type": "text", "text": "What is said?"}]}],
        tokenize=False, add_generation_prompt=True)
    (expected,) = hf.loglikelihood([_ll(rendered.replace(hf.fmt.placeholder, "<audio>")
                                        .replace("<|audio_bos|>", "").replace("<|audio_eos|>", ""), " A",
                                        [_clip(2.0, 4)])], disable_tqdm=True)
    assert got[0] == pytest.approx(expected[0], abs=1e-6)


def test_limits_come_from_the_feature_extractor(hf):
    assert hf.max_audio_seconds == 30.0 == hf.processor.feature_extractor.n_samples / 16000
    assert hf.get_model_info()["kv_reuse"] is True


def test_context_longer_than_max_length(tiny_model_dir, tmp_path):
    """Text: truncated exactly as lm-eval's `hf` model truncates. Audio: refused by name."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_audio.tiny.qwen2_audio import build_text_backbone

    backbone = build_text_backbone(tiny_model_dir, tmp_path / "lm")
    long_text = " ".join(f"word{i}" for i in range(80)) + " Answer:"
    requests = [_ll(long_text, x, doc_id=1) for x in (" A", " the end")]
    ours = HFAudioLM(pretrained=str(tiny_model_dir), max_length=32).loglikelihood(requests, disable_tqdm=True)
    theirs = HFLM(pretrained=str(backbone), max_length=32, device="cpu").loglikelihood(requests, disable_tqdm=True)
    untruncated = HFAudioLM(pretrained=str(tiny_model_dir)).loglikelihood(requests, disable_tqdm=True)
    np.testing.assert_allclose([r[0] for r in ours], [r[0] for r in theirs], atol=1e-4)
    assert abs(ours[1][0] - untruncated[1][0]) > 1e-3  # the cut did change the score
    small = HFAudioLM(pretrained=str(tiny_model_dir), max_length=64)
    with pytest.raises(ValueError, match=r"my_task doc 7: context \+ continuation is \d+ tokens .* max_length 64"):
        small.loglikelihood([_ll("Q:", " A", [_clip(3.0, 1)], doc_id=7, task="my_task")], disable_tqdm=True)
    with pytest.raises(ValueError, match=r"t doc 3: context \+ max_gen_toks is \d+ tokens .* max_length 64"):
        small.generate_until([_gen("Q:", [_clip(3.0, 1)], doc_id=3)], disable_tqdm=True)


def test_loader_class_per_architecture(tiny_model_dir):
    from lm_eval_audio.models import archs_support

    cls, model_type = archs_support.check_loadable(str(tiny_model_dir), "hf-audio")
    assert (cls.__name__, model_type) == ("AutoModelForMultimodalLM", "qwen2_audio")


def test_qwen2audio_refuses_another_architecture_before_loading(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "audioflamingo3"}))
    with pytest.raises(ValueError, match="qwen2audio: .* is a 'audioflamingo3' checkpoint; use --model hf-audio"):
        Qwen2AudioLM(pretrained=str(tmp_path))


def test_loglikelihood_batches_never_pad_a_row_by_more_than_a_tenth(hf, monkeypatch):
    """Rows are sorted longest first and a batch closes before a row it would pad by more than
    MAX_PADDING of its width: similar lengths share a batch, a long clip does not widen short ones."""
    seconds = [2.0, 9.0, 2.1, 8.8, 4.0, 1.95]
    requests = [_ll("Question: which option? Answer:", x, [_clip(s, 40 + d)], doc_id=d)
                for d, s in enumerate(seconds) for x in LETTERS]
    batches = []
    score = hf._score
    monkeypatch.setattr(hf, "_score", lambda batch: batches.append([int(g[0].name.split()[-1]) for g in batch])
                        or score(batch))
    results = hf.loglikelihood(requests, disable_tqdm=True)
    assert batches == [[1, 3], [4], [2, 0, 5]]
    alone = HFAudioLM(pretrained=hf.pretrained, batch_size=1).loglikelihood(requests, disable_tqdm=True)
    np.testing.assert_allclose([r[0] for r in results], [r[0] for r in alone], atol=1e-4)


@pytest.mark.parametrize("where", ["gen_kwargs", "generation_config.json"])
def test_beam_search_batches_as_it_runs_alone(tiny_model_dir, tmp_path, where):
    """generate() widens its inputs per beam but not a cache handed to it: beam search, asked for
    by the task or by the checkpoint's own generation config, takes the padded prefill, and a
    batch of clips of different lengths gives batch 1's transcripts."""
    requests = [_gen(f"Transcribe clip {i}:", [_clip(s, 50 + i)], doc_id=i, max_gen_toks=5) for i, s in enumerate([1.0, 3.5, 2.0])]
    checkpoint = tmp_path / "beams"
    shutil.copytree(tiny_model_dir, checkpoint)
    if where == "gen_kwargs":
        for r in requests:
            r.args[1]["num_beams"] = 2
    else:
        config = json.loads((checkpoint / where).read_text()) if (checkpoint / where).exists() else {}
        (checkpoint / where).write_text(json.dumps({**config, "num_beams": 2}))
    alone = HFAudioLM(pretrained=str(checkpoint), batch_size=1)
    if where != "gen_kwargs":
        assert alone.core.generation_config.num_beams == 2
    batched = HFAudioLM(pretrained=str(checkpoint), batch_size=4)
    assert batched.generate_until(requests, disable_tqdm=True) == alone.generate_until(requests, disable_tqdm=True)
