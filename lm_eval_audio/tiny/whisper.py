"""Random Whisper checkpoints built offline and deterministically, for tests and benchmarks.

The checkpoint is a real `WhisperForConditionalGeneration` with a real `WhisperProcessor`, laid
out as a hub Whisper is: byte-level BPE (trained here on a few lines of English), the special
tokens in Whisper's order (`<|endoftext|>`, `<|startoftranscript|>`, languages, tasks, ...,
`<|notimestamps|>` last, then the 1,501 timestamp tokens `<|0.00|>`..`<|30.00|>`) and a generation
config with `lang_to_id`, `task_to_id` and `no_timestamps_token_id`, so forced language/task and
transformers' long-form (timestamp-based) generation run on it exactly as on openai/whisper-*.
Its weights are random: it transcribes nothing; it exercises code paths, not accuracy.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "de")  # two, so language forcing is observable
_CORPUS = [
    "and so my fellow americans ask not what your country can do for you",
    "the quick brown fox jumps over the lazy dog",
    "printing in the only sense with which we are at present concerned",
    "differs from most if not from all the arts and crafts represented in the exhibition",
    "he said that the colour of the theatre was grey",
]


def _special_tokens() -> list[str]:
    langs = [f"<|{code}|>" for code in LANGUAGES]
    return ["<|startoftranscript|>", *langs, "<|translate|>", "<|transcribe|>", "<|startoflm|>",
            "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


def build_tokenizer(vocab_size: int = 400):
    """A Whisper tokenizer with a small byte-level BPE and Whisper's special and timestamp tokens."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import WhisperTokenizer


    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(_CORPUS * 20, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = WhisperTokenizer(vocab=model["vocab"], merges=merges)
    tok.add_special_tokens({"additional_special_tokens": _special_tokens()})
    # Timestamps follow <|notimestamps|> directly: both transformers and Whisper compute the first
    # timestamp id as (last special id + 1).
    tok.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    return tok


def build_tiny_whisper(output_dir: str | Path, seed: int = 0) -> Path:
    """Write a random tiny multilingual Whisper (model, processor, generation config) to `output_dir`."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in ["<|endoftext|>", *_special_tokens()]}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    if ids["<|notimestamps|>"] != tok.all_special_ids[-1] or tok.convert_tokens_to_ids("<|0.00|>") != ids["<|notimestamps|>"] + 1:
        raise RuntimeError("tiny Whisper tokenizer: timestamp tokens must directly follow <|notimestamps|>")
    space = tok.convert_tokens_to_ids("Ġ")
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot, begin_suppress_tokens=[space, eot],
        suppress_tokens=[],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=448,
        begin_suppress_tokens=[space, eot], suppress_tokens=[], forced_decoder_ids=None,
        is_multilingual=True,
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,
    )
    model.generation_config = gen
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    logger.info("wrote a random tiny Whisper (%.2f M parameters) to %s",
                sum(p.numel() for p in model.parameters()) / 1e6, out)
    return out
