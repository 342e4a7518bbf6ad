"""Random Qwen2-Audio checkpoints built offline and deterministically, for tests and benchmarks.

`tiny` (~0.3 M parameters, < 2 MB) keeps tests and the demo fast; `small` (Whisper-tiny-sized
encoder, ~26 M-parameter language model) makes compute, not start-up, dominate benchmarks.
The tokenizer is a byte-level BPE trained here on a few lines of English, so every text is
encodable; the answer letters and digits used by our tasks are single tokens.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]

# Text the BPE is trained on: enough English for sensible merges, and the answer forms our
# tasks score (" A".." D", "0".."2", label words) so each is one token.
_CORPUS = [
    "The following are multiple choice questions (with answers) about general knowledge.",
    "Answer: A", "Answer: B", "Answer: C", "Answer: D", " A", " B", " C", " D",
    "Answer with the letter of the correct option. The answer is",
    "Transcribe the audio: and so my fellow americans ask not what your country can do for you",
    "Detect the language and recognize the speech: <|en|>",
    "Classify the pitch range of the singing: answer 0 for narrow, 1 for moderate and 2 for wide.",
    "narrow moderate wide 0 1 2 3 4 5 6 7 8 9",
    "You are a helpful assistant. system user assistant Audio 1: Audio 2:",
    "the quick brown fox jumps over the lazy dog while the printer prints a question of history",
    "what which who where when why how is are was were be been of to in for on with at by from",
]


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


def train_bpe(vocab_size: int, special_tokens: list[str]):
    """The byte-level BPE (a `tokenizers.Tokenizer`) trained deterministically on `_CORPUS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    return tok


def train_tokenizer(
    vocab_size: int,
    special_tokens: list[str] = SPECIAL_TOKENS,
    *,
    eos_token: str = "<|im_end|>",
    pad_token: str = "<|endoftext|>",
    bos_token: str | None = None,
    named_tokens: dict[str, str] | None = None,
):
    """A deterministic byte-level BPE trained on `_CORPUS`, as a transformers tokenizer.

    The defaults are Qwen2-Audio's special tokens. `special_tokens[0]` is the padding/text-end
    token; the rest are registered as additional special tokens. `named_tokens` maps attribute
    names a processor reads from its tokenizer (`audio_token`, ...) to tokens of `special_tokens`.
    """
    from transformers import PreTrainedTokenizerFast

    tok = train_bpe(vocab_size, special_tokens)
    extra = {"extra_special_tokens": named_tokens} if named_tokens else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=None,
        bos_token=bos_token,
        additional_special_tokens=special_tokens[1:],
        model_max_length=32768,
        padding_side="left",
        **extra,
    )


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lm_eval_audio.tiny_archs import BUILDERS

    parser.add_argument("output_dir", help="directory to write the checkpoint to")
    parser.add_argument("--arch", choices=list(BUILDERS), default="qwen2_audio",
                        help="architecture (default qwen2_audio; --size small exists for qwen2_audio only)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from lm_eval_audio.tiny_archs import ArchUnavailable, build_arch

    try:
        build_arch(args.output_dir, arch=getattr(args, "arch", "qwen2_audio"), size=args.size, seed=args.seed)
    except ArchUnavailable as err:
        raise SystemExit(f"make-tiny-model: {err}") from err
    return 0
