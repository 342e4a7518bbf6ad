"""The byte-level BPE every tiny checkpoint's tokenizer is trained from, deterministically.

Trained here on a few lines of English, so every text is encodable; the answer letters and
digits used by our tasks are single tokens. Each architecture's builder passes its own special
tokens.
"""

from __future__ import annotations

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
