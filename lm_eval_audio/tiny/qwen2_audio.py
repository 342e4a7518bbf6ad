"""Random Qwen2-Audio checkpoints built offline and deterministically, for tests and benchmarks.

`tiny` (~0.3 M parameters, < 2 MB) keeps tests and the demo fast; `small` (Whisper-tiny-sized
encoder, ~26 M-parameter language model) makes compute, not start-up, dominate benchmarks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lm_eval_audio.tiny.tokenizer import train_tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSize:
    """Dimensions of one checkpoint size."""

    vocab_size: int
    enc_d_model: int
    enc_layers: int
    enc_heads: int
    enc_ffn: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


SIZES = {
    "tiny": ModelSize(vocab_size=400, enc_d_model=64, enc_layers=2, enc_heads=2, enc_ffn=128,
                      hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128),
    # Whisper-tiny's encoder (d 384, 4 layers, 6 heads, ffn 1536); LM ~26 M parameters.
    "small": ModelSize(vocab_size=2000, enc_d_model=384, enc_layers=4, enc_heads=6, enc_ffn=1536,
                       hidden=512, layers=8, heads=8, kv_heads=4, intermediate=1408),
}


def build_tiny_model(output_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random Qwen2-Audio checkpoint (model, processor, tokenizer) to `output_dir`."""
    import torch
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    s = SIZES[size]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = train_tokenizer(s.vocab_size)
    feature_extractor = WhisperFeatureExtractor(feature_size=128)
    processor = Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    # transformers keeps a default template only for old hub configs; save it explicitly.
    processor.chat_template = processor.default_chat_template
    tokenizer.chat_template = processor.default_chat_template

    config = Qwen2AudioConfig(
        audio_config=dict(
            d_model=s.enc_d_model, encoder_layers=s.enc_layers, encoder_attention_heads=s.enc_heads,
            encoder_ffn_dim=s.enc_ffn, num_mel_bins=128, max_source_positions=1500,
        ),
        text_config=dict(
            model_type="qwen2", vocab_size=len(tokenizer), hidden_size=s.hidden,
            num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
            intermediate_size=s.intermediate, max_position_embeddings=4096,
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        ),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    logger.info("wrote %s Qwen2-Audio checkpoint (%.2f M parameters) to %s", size, n / 1e6, out)
    return out


def build_text_backbone(audio_model_dir: str | Path, output_dir: str | Path) -> Path:
    """Save a Qwen2-Audio checkpoint's language model as a plain Qwen2 causal LM (with its
    tokenizer and chat template): the text backbone for `--model hf`, with the very weights the
    audio LLM's text side has (as Qwen2-Audio's LM starts from its Qwen backbone)."""
    from transformers import AutoTokenizer, Qwen2AudioForConditionalGeneration, Qwen2ForCausalLM

    audio_model = Qwen2AudioForConditionalGeneration.from_pretrained(audio_model_dir)
    text_model = Qwen2ForCausalLM(audio_model.config.text_config)
    state = {f"model.{k}": v for k, v in audio_model.model.language_model.state_dict().items()}
    state["lm_head.weight"] = audio_model.lm_head.weight
    text_model.load_state_dict(state, strict=True)
    text_model.generation_config = audio_model.generation_config
    out = Path(output_dir)
    text_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(audio_model_dir).save_pretrained(out)
    logger.info("wrote the text backbone of %s to %s", audio_model_dir, out)
    return out
