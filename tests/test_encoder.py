"""The encoder on each clip's own length equals transformers' 30 s path on every valid position."""

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration
from transformers.masking_utils import create_bidirectional_mask

from lm_eval_audio.arch.encoder import audio_token_count, encode_audio, extract_features


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    model = Qwen2AudioForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    return model, AutoProcessor.from_pretrained(tiny_model_dir)


def _stock_audio_features(model, features):
    """transformers' own path: Qwen2AudioEncoder.forward on the 30 s window, then the projector."""
    inner = model.model
    lengths = torch.tensor(features.valid_frames)
    conv_lengths, out_lengths = inner.audio_tower._get_feat_extract_output_lengths(lengths)
    seq = inner.audio_tower.config.max_source_positions
    mask = (torch.arange(seq)[None] < conv_lengths[:, None]).long()
    mask = create_bidirectional_mask(
        config=inner.audio_tower.config, inputs_embeds=torch.zeros(len(lengths), seq, 1), attention_mask=mask
    )
    hidden = inner.audio_tower(features.input_features, attention_mask=mask).last_hidden_state
    projected = inner.multi_modal_projector(hidden)
    return [projected[i, : out_lengths[i]] for i in range(len(lengths))]


@pytest.mark.parametrize("seconds", [0.7, 3.0, 7.3, 12.5, 29.0])
def test_own_length_matches_stock_encoder(model_and_processor, seconds):
    model, processor = model_and_processor
    rng = np.random.default_rng(int(seconds * 10))
    clip = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    features = extract_features(processor.feature_extractor, [clip], own_length=True)
    stock_features = extract_features(processor.feature_extractor, [clip], own_length=False)
    assert stock_features.input_features.shape[-1] == 3000
    assert features.valid_frames == stock_features.valid_frames
    read = min(3000, features.valid_frames[0] + 4)  # the frames encode_audio reads
    torch.testing.assert_close(features.input_features[..., :read], stock_features.input_features[..., :read], atol=0, rtol=0)
    with torch.no_grad():
        (own,) = encode_audio(model, features, own_length=True)
        (stock,) = _stock_audio_features(model, stock_features)
    assert own.shape == stock.shape
    assert own.shape[0] == audio_token_count(features.valid_frames[0])
    torch.testing.assert_close(own, stock, atol=1e-5, rtol=0)


def test_mixed_lengths_in_one_batch(model_and_processor):
    model, processor = model_and_processor
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(16000 * s))).astype(np.float32) for s in (2.0, 9.0, 4.5)]
    features = extract_features(processor.feature_extractor, clips, own_length=True)
    assert features.input_features.shape[-1] < 3000
    with torch.no_grad():
        own = encode_audio(model, features, own_length=True)
        stock = _stock_audio_features(model, extract_features(processor.feature_extractor, clips, own_length=False))
    for a, b in zip(own, stock):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_token_count_matches_processor(model_and_processor):
    _, processor = model_and_processor
    clip = np.zeros(16000 * 10, np.float32)
    out = processor(text=["<|audio_bos|><|AUDIO|><|audio_eos|>"], audio=[clip], sampling_rate=16000)
    n = sum(t == processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>") for t in out["input_ids"][0])
    assert n == audio_token_count(1000) == 250
