"""Random tiny checkpoints of every audio-LLM architecture, built offline and deterministically.

`lm-eval-audio make-tiny-model DIR --arch NAME` dispatches here. Each builder makes a tokenizer
(the byte-level BPE of `tiny.tokenizer.train_tokenizer`, with the architecture's special tokens), the
architecture's processor with a chat template, and a random model of a few hundred thousand
parameters; `_save` writes them the same way for every architecture, so two builds with the same
seed are byte-identical. `qwen2_audio` is `tiny.qwen2_audio.build_tiny_model`, unchanged.

An architecture whose processor or model cannot be built in this environment raises
`ArchUnavailable` naming it and the reason (for example a backend that has no CPU build here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lm_eval_audio.arch.facts import unavailable
from lm_eval_audio.tiny.qwen2_audio import build_tiny_model
from lm_eval_audio.tiny.tokenizer import train_bpe, train_tokenizer

logger = logging.getLogger(__name__)


class ArchUnavailable(RuntimeError):
    """An architecture's tiny checkpoint cannot be built (or run) here; the message says why."""


# Dimensions shared by every tiny language model: a 2-layer decoder, hidden 64, GQA 4/2 heads.
_LM = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           intermediate_size=128, max_position_embeddings=4096)
_VOCAB = 400


def _require(arch: str) -> None:
    """Raise `ArchUnavailable` for `arch` when a package its facts require does not import."""
    why = unavailable(arch)
    if why:
        raise ArchUnavailable(f"{arch}: {why}")


def _save(out: Path, model, processor) -> Path:
    """Write model + processor (+ the processor's tokenizer) the same way for every architecture.

    The model comes from `_seeded`; saving is itself deterministic (safetensors, sorted JSON), so
    equal seeds give equal bytes (tests/test_archs.py compares two builds file by file).
    """
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    logger.info("wrote a tiny %s checkpoint (%.2f M parameters) to %s", model.config.model_type, n / 1e6, out)
    return out


def _seeded(seed: int, make: Callable[[], object]):
    """`make()` (a model constructor) under `torch.manual_seed(seed)`, in eval mode."""
    import torch

    torch.manual_seed(seed)
    return make().eval()


# -- chat templates --------------------------------------------------------------------------
# Audio Flamingo 3: ChatML with a default system turn; each audio item renders as `<sound>`,
# audio items before the text of the same turn. transformers keeps no default template for this
# processor; this one reproduces the real checkpoint's rendering as pinned by transformers'
# tests/models/audioflamingo3/test_processing_audioflamingo3.py::test_chat_template
# (nvidia/audio-flamingo-3-hf: "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
# <|im_start|>user\n<sound>What is ...?<|im_end|>\n<|im_start|>assistant\n").
AF3_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] if item['type'] == 'audio' %}<sound>{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Granite Speech: Granite 3.x roles (`<|start_of_role|>ROLE<|end_of_role|>...<|end_of_text|>\n`),
# the audio placeholder `<|audio|>` written where the clip goes. The real template
# (ibm-granite/granite-speech-3.3-2b, as used in transformers' docs/source/en/model_doc/
# granite_speech.md: `{"role": "user", "content": "<|audio|>can you transcribe ..."}`) takes
# string content with the placeholder in it; list content with audio items is rendered the same
# way (each audio item -> `<|audio|>`, in order) so both message forms work. Its long default
# system prompt (knowledge cutoff, date) is left out: a tiny random model has no use for it.
GRANITE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|start_of_role|>{{ message['role'] }}<|end_of_role|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<|audio|>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|end_of_text|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)


# -- builders ---------------------------------------------------------------------------------
def _build_qwen2_audio(out: Path, seed: int, size: str) -> Path:
    return build_tiny_model(out, size=size, seed=seed)


def _build_audioflamingo3(out: Path, seed: int, size: str) -> Path:
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
        WhisperFeatureExtractor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"]
    tokenizer = train_tokenizer(_VOCAB, specials, named_tokens={"audio_token": "<sound>"})
    tokenizer.chat_template = AF3_CHAT_TEMPLATE
    processor = AudioFlamingo3Processor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
        audio_token="<sound>", chat_template=AF3_CHAT_TEMPLATE,
    )
    config = AudioFlamingo3Config(
        audio_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                          num_mel_bins=128, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **_LM),
        audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
    )
    model = _seeded(seed, lambda: AudioFlamingo3ForConditionalGeneration(config))
    return _save(out, model, processor)


def _build_granite_speech(out: Path, seed: int, size: str) -> Path:
    _require("granite_speech")
    from transformers import (
        GraniteSpeechConfig,
        GraniteSpeechFeatureExtractor,
        GraniteSpeechForConditionalGeneration,
        GraniteSpeechProcessor,
    )

    specials = ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|audio|>"]
    tokenizer = train_tokenizer(_VOCAB, specials, eos_token="<|end_of_text|>", pad_token="<|end_of_text|>",
                                named_tokens={"audio_token": "<|audio|>"})
    tokenizer.chat_template = GRANITE_CHAT_TEMPLATE
    # Real checkpoint's extractor: 80 mels, pairs of frames stacked (input_dim 160), projector
    # windows of 15 frames downsampled by 5.
    extractor = GraniteSpeechFeatureExtractor(n_mels=80, projector_window_size=15, projector_downsample_rate=5)
    processor = GraniteSpeechProcessor(audio_processor=extractor, tokenizer=tokenizer, audio_token="<|audio|>",
                                       chat_template=GRANITE_CHAT_TEMPLATE)
    config = GraniteSpeechConfig(
        encoder_config=dict(input_dim=160, num_layers=2, hidden_dim=64, feedforward_mult=2, num_heads=2,
                            output_dim=42, context_size=200, max_pos_emb=512, conv_kernel_size=15),
        projector_config=dict(model_type="blip_2_qformer", hidden_size=64, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=128, encoder_hidden_size=64,
                              cross_attention_frequency=1, max_position_embeddings=2048),
        text_config=dict(model_type="granite", vocab_size=len(tokenizer), tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **_LM),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|audio|>"),
        # The real checkpoints ship a LoRA adapter that peft enables only for audio requests;
        # a random tiny model has none.
        has_lora_adapter=False, window_size=15, downsample_rate=5,
    )
    model = _seeded(seed, lambda: GraniteSpeechForConditionalGeneration(config))
    return _save(out, model, processor)


# Qwen2.5-Omni: ChatML; an audio item renders as `<|audio_bos|><|AUDIO|><|audio_eos|>`, content
# items in their order, as the real checkpoint's template (Qwen/Qwen2.5-Omni-7B) renders them; its
# long default system prompt (a virtual human that can speak) is left out. Qwen3-Omni's template
# is the same with its own audio tokens (`<|audio_start|><|audio_pad|><|audio_end|>`).
def _chatml_template(audio: str) -> str:
    return (
        "{% for message in messages %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'audio' %}" + audio + "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}"
        "{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


@dataclass(frozen=True)
class _OmniTokens:
    """The special tokens of one Omni generation, by the tokenizer attribute the processor reads."""

    audio: str
    audio_bos: str
    audio_eos: str
    image: str
    video: str
    vision_bos: str
    vision_eos: str

    def named(self) -> dict[str, str]:
        return {f"{k}_token": v for k, v in self.__dict__.items()}

    def specials(self) -> list[str]:
        return ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *self.__dict__.values()]


QWEN25_OMNI_TOKENS = _OmniTokens("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>",
                                 "<|vision_bos|>", "<|vision_eos|>")
QWEN3_OMNI_TOKENS = _OmniTokens("<|audio_pad|>", "<|audio_start|>", "<|audio_end|>", "<|image_pad|>", "<|video_pad|>",
                                "<|vision_start|>", "<|vision_end|>")


def _omni_tokenizer(tokens: _OmniTokens):
    tokenizer = train_tokenizer(_VOCAB, tokens.specials(), named_tokens=tokens.named())
    tokenizer.chat_template = _chatml_template(tokens.audio_bos + tokens.audio + tokens.audio_eos)
    return tokenizer, {t: tokenizer.convert_tokens_to_ids(t) for t in tokens.specials()}


def _omni_lm(tokenizer, ids: dict, **extra) -> dict:
    # mrope splits head_dim/2 = 8 rotary pairs into (time, height, width) sections
    return dict(_LM, vocab_size=len(tokenizer), tie_word_embeddings=False, eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"],
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}, **extra)


def omni_model_parts(seed: int = 0):
    """Tokenizer and random `Qwen2_5OmniForConditionalGeneration` (thinker only: talker and
    token2wav off) of the tiny Omni checkpoint, without the processor.

    `AutoModelForMultimodalLM` maps model_type `qwen2_5_omni` to this whole-Omni class (the
    thinker's own type is not in its mapping), so that is what a checkpoint must hold; with
    `enable_audio_output=False` it holds only the thinker.
    """
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    t = QWEN25_OMNI_TOKENS
    tokenizer, ids = _omni_tokenizer(t)
    thinker = dict(
        audio_config=dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128,
                          num_mel_bins=128, max_source_positions=1500, n_window=100, output_dim=64),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[0]),
        text_config=_omni_lm(tokenizer, ids),
        audio_token_index=ids[t.audio], image_token_index=ids[t.image], video_token_index=ids[t.video],
        audio_start_token_id=ids[t.audio_bos], audio_end_token_id=ids[t.audio_eos],
        vision_start_token_id=ids[t.vision_bos], user_token_id=ids["<|im_start|>"],
    )
    config = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
    return tokenizer, _seeded(seed, lambda: Qwen2_5OmniForConditionalGeneration(config))


def _omni_processor(processor_class, tokenizer):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor, WhisperFeatureExtractor

    return processor_class(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
                           feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
                           chat_template=tokenizer.chat_template)


def _build_qwen2_5_omni(out: Path, seed: int, size: str) -> Path:
    _require("qwen2_5_omni")
    from transformers import Qwen2_5OmniProcessor

    tokenizer, model = omni_model_parts(seed)
    processor = _omni_processor(Qwen2_5OmniProcessor, tokenizer)
    _save(out, model, processor)
    # from_pretrained of the whole Omni model reads the talker's speaker table, even without a
    # talker; an empty one is what a text-only checkpoint has to carry.
    import torch

    torch.save({}, out / "spk_dict.pt")
    return out


def _build_qwen3_omni_moe(out: Path, seed: int, size: str) -> Path:
    _require("qwen3_omni_moe")
    from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeForConditionalGeneration, Qwen3OmniMoeProcessor

    t = QWEN3_OMNI_TOKENS
    tokenizer, ids = _omni_tokenizer(t)
    lm = {k: v for k, v in _omni_lm(tokenizer, ids).items() if k != "intermediate_size"}
    thinker = dict(
        # n_window 50 (chunks of 100 mel frames): the processor's token rule assumes it.
        audio_config=dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128,
                          num_mel_bins=128, max_source_positions=1500, n_window=50, n_window_infer=800,
                          output_dim=64, downsample_hidden_size=32),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           deepstack_visual_indexes=[0], num_position_embeddings=64),
        text_config=dict(lm, intermediate_size=128, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                         head_dim=16),
        audio_token_id=ids[t.audio], image_token_id=ids[t.image], video_token_id=ids[t.video],
        audio_start_token_id=ids[t.audio_bos], vision_start_token_id=ids[t.vision_bos],
        user_token_id=ids["<|im_start|>"],
    )
    config = Qwen3OmniMoeConfig(thinker_config=thinker, enable_audio_output=False,
                                im_start_token_id=ids["<|im_start|>"], im_end_token_id=ids["<|im_end|>"])
    model = _seeded(seed, lambda: Qwen3OmniMoeForConditionalGeneration(config))
    return _save(out, model, _omni_processor(Qwen3OmniMoeProcessor, tokenizer))


# Phi-4-multimodal: `<|user|>...<|end|><|assistant|>`, an audio item renders as `<|audio|>` (the
# placeholder the processor repeats to audio_embed_sizes), items in order. The processor's
# __init__ takes no chat template, so only the tokenizer carries it (as on the real checkpoint).
PHI4_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<|audio|>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _build_phi4_multimodal(out: Path, seed: int, size: str) -> Path:
    _require("phi4_multimodal")
    from transformers import (
        Phi4MultimodalConfig,
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
        Phi4MultimodalImageProcessor,
        Phi4MultimodalProcessor,
    )

    specials = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|image|>", "<|audio|>"]
    tokenizer = train_tokenizer(_VOCAB, specials, eos_token="<|end|>",
                                named_tokens={"audio_token": "<|audio|>", "image_token": "<|image|>"})
    tokenizer.chat_template = PHI4_CHAT_TEMPLATE
    processor = Phi4MultimodalProcessor(image_processor=Phi4MultimodalImageProcessor(),
                                        audio_processor=Phi4MultimodalFeatureExtractor(), tokenizer=tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    config = Phi4MultimodalConfig(
        vocab_size=len(tokenizer), bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|end|>"],
        pad_token_id=ids["<|endoftext|>"], **{k: v for k, v in _LM.items()},
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, crop_size=28, patch_size=14, image_token_id=ids["<|image|>"]),
        audio_config=dict(hidden_size=32, intermediate_size=64, num_blocks=2, num_attention_heads=2,
                          ext_pw_out_channel=32, depthwise_separable_out_channel=32, nemo_conv_channels=32,
                          audio_token_id=ids["<|audio|>"]),
    )
    model = _seeded(seed, lambda: Phi4MultimodalForCausalLM(config))
    return _save(out, model, processor)


# Gemma 3n: `<start_of_turn>ROLE\n...<end_of_turn>\n`, the model's turn named `model`; an audio
# item renders as `<audio_soft_token>`, which the processor replaces with its full audio sequence
# (`\n\n<start_of_audio>` + audio_seq_length soft tokens + `<end_of_audio>\n\n`).
GEMMA3N_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<audio_soft_token>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _build_gemma3n(out: Path, seed: int, size: str) -> Path:
    _require("gemma3n")
    from transformers import (
        Gemma3nAudioFeatureExtractor,
        Gemma3nConfig,
        Gemma3nForConditionalGeneration,
        Gemma3nProcessor,
        SiglipImageProcessor,
    )

    # Gemma 3n's vocabulary is text, then the vision tokens, then the audio tokens (each tower
    # embeds its own range); the tokens that open each range are appended after the text BPE.
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<start_of_audio>"]
    bpe = train_bpe(_VOCAB, specials)
    text_vocab = bpe.get_vocab_size()
    ranges = ["<end_of_image>", "<image_soft_token>", "<end_of_audio>", "<audio_soft_token>"]
    bpe.add_special_tokens(ranges)
    named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
             "boa_token": "<start_of_audio>", "eoa_token": "<end_of_audio>", "audio_token": "<audio_soft_token>"}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<end_of_turn>", pad_token="<pad>",
                                        bos_token="<bos>", unk_token=None, additional_special_tokens=specials[1:] + ranges,
                                        model_max_length=32768, padding_side="left", extra_special_tokens=named)
    tokenizer.chat_template = GEMMA3N_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials + ranges}
    assert [ids[t] for t in ranges] == list(range(text_vocab, text_vocab + 4)), ids
    audio_tokens = 188  # as the real checkpoint: a 30 s clip's soft tokens (4x4 frame reduction)
    processor = Gemma3nProcessor(feature_extractor=Gemma3nAudioFeatureExtractor(), image_processor=SiglipImageProcessor(),
                                 tokenizer=tokenizer, chat_template=GEMMA3N_CHAT_TEMPLATE,
                                 audio_seq_length=audio_tokens, image_seq_length=4)
    config = Gemma3nConfig(
        text_config=dict(vocab_size=text_vocab + 4, vocab_size_per_layer_input=text_vocab, hidden_size=64,
                         intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, hidden_size_per_layer_input=8, num_kv_shared_layers=0, laurel_rank=4,
                         altup_num_inputs=2, activation_sparsity_pattern=[0.0, 0.0], sliding_window=64,
                         layer_types=["sliding_attention", "full_attention"], max_position_embeddings=4096,
                         pad_token_id=ids["<pad>"], eos_token_id=ids["<end_of_turn>"], bos_token_id=ids["<bos>"]),
        # timm's smallest registered EfficientNet: the tower is never run on audio-only inputs.
        vision_config=dict(architecture="test_efficientnet", hidden_size=32, vocab_size=2, vocab_offset=text_vocab,
                           do_pooling=True),
        audio_config=dict(vocab_size=2, vocab_offset=text_vocab + 2, hidden_size=32, conf_num_attention_heads=2,
                          conf_num_hidden_layers=2, sscp_conv_channel_size=[16, 8], conf_attention_chunk_size=12,
                          conf_attention_context_left=13),
        audio_soft_tokens_per_image=audio_tokens, vision_soft_tokens_per_image=4,
        boi_token_id=ids["<start_of_image>"], eoi_token_id=ids["<end_of_image>"], image_token_id=ids["<image_soft_token>"],
        boa_token_id=ids["<start_of_audio>"], eoa_token_id=ids["<end_of_audio>"], audio_token_id=ids["<audio_soft_token>"],
    )
    model = _seeded(seed, lambda: Gemma3nForConditionalGeneration(config))
    return _save(out, model, processor)


# Voxtral's tokenizer is mistral-common's Tekken (tiktoken ranks in tekken.json), rendered by
# mistral-common (no jinja chat template). The processor fixes the audio token at id 24, so the
# special tokens are mistral-common's SpecialTokens in their order, padded so that [AUDIO] is 24.
_TEKKEN_SPECIALS = 32
# GPT-2's pre-tokenizer regex: the one the BPE of train_bpe was trained under (ByteLevel).
_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _tekken_json(vocab_size: int) -> dict:
    """A tekken.json (v7, with an audio section) whose ranks are the BPE of `train_bpe`."""
    import base64

    from mistral_common.tokens.tokenizers.base import SpecialTokens
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    names = [t.value for t in SpecialTokens]
    specials = names[:22] + ["<SPECIAL_22>", "<SPECIAL_23>", "[AUDIO]", "[BEGIN_AUDIO]", "[TRANSCRIBE]"]
    specials += [f"<SPECIAL_{i}>" for i in range(len(specials), _TEKKEN_SPECIALS)]
    assert specials.index("[AUDIO]") == 24
    bpe = train_bpe(vocab_size, [])
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    # Tekken wants the 256 single bytes first, in byte order; the merged pieces follow in BPE id
    # order, which is merge order, which is what tiktoken's ranks mean.
    merged = [piece for piece, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]) if len(piece) > 1]
    pieces = [bytes([b]) for b in range(256)] + [bytes(to_byte[c] for c in piece) for piece in merged]
    vocab = [{"rank": rank, "token_bytes": base64.b64encode(piece).decode(), "token_str": None}
             for rank, piece in enumerate(pieces)]
    return {
        "config": {"pattern": _GPT2_PATTERN, "num_vocab_tokens": len(vocab),
                   "default_vocab_size": len(vocab) + _TEKKEN_SPECIALS,
                   "default_num_special_tokens": _TEKKEN_SPECIALS, "version": "v7"},
        "vocab": vocab,
        "special_tokens": [{"rank": i, "token_str": t, "is_control": True} for i, t in enumerate(specials)],
        # As Voxtral-Mini: 16 kHz, 12.5 audio tokens per second, clips padded to 30 s chunks.
        "audio": {"sampling_rate": 16000, "frame_rate": 12.5, "chunk_length_s": 30.0,
                  "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}},
    }


def _build_voxtral(out: Path, seed: int, size: str) -> Path:
    _require("voxtral")
    import json

    from transformers import VoxtralConfig, VoxtralForConditionalGeneration, VoxtralProcessor, WhisperFeatureExtractor
    from transformers.tokenization_mistral_common import MistralCommonBackend

    out.mkdir(parents=True, exist_ok=True)
    tekken = _tekken_json(_VOCAB - _TEKKEN_SPECIALS)
    (out / "tekken.json").write_text(json.dumps(tekken, indent=1), encoding="utf-8")
    tokenizer = MistralCommonBackend.from_pretrained(out)
    processor = VoxtralProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer)
    config = VoxtralConfig(
        # The projector folds 4 encoder frames into one: audio intermediate_size must be 4 x hidden
        # (1500 frames per 30 s -> 375 tokens = 30 s x frame_rate 12.5).
        audio_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                          num_mel_bins=128, max_source_positions=1500),
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), head_dim=16, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **_LM),
        audio_token_id=processor.audio_token_id,
    )
    model = _seeded(seed, lambda: VoxtralForConditionalGeneration(config))
    return _save(out, model, processor)


# -- GLM-ASR, Music Flamingo, Qwen3-ASR, Gemma 4 ------------------------------------------------
# GLM-ASR: GLM-4 roles (`<|user|>\n`, `<|assistant|>\n`) and each audio item as
# `<|begin_of_audio|><|pad|><|end_of_audio|>`, as zai-org/GLM-ASR's inference.py writes its prompt
# (`<|user|>\n<|begin_of_audio|>` + audio ids + `<|end_of_audio|>` ... `<|assistant|>\n`); the
# processor repeats `<|pad|>` (its audio_token) to the clip's length. Items render in their order.
GLMASR_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<|begin_of_audio|><|pad|><|end_of_audio|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Music Flamingo: Audio Flamingo 3's ChatML layout (audio items before the turn's text, each a bare
# `<sound>`: the processor itself writes `<|sound_bos|>`/`<|sound_eos|>` around each expansion) with
# its own default system turn, as pinned by transformers' tests/models/musicflamingo/
# test_processing_musicflamingo.py::test_chat_template (nvidia/music-flamingo-2601-hf).
MUSICFLAMINGO_SYSTEM = (
    "You are Music Flamingo, a multimodal assistant for language and music. On each turn you receive an audio "
    "clip which contains music and optional text, you will receive at least one or both; use your world "
    "knowledge and reasoning to help the user with any task. Interpret the entirety of the content any input "
    "music--regardlenss of whether the user calls it audio, music, or sound."
)
MUSICFLAMINGO_CHAT_TEMPLATE = AF3_CHAT_TEMPLATE.replace("You are a helpful assistant.", MUSICFLAMINGO_SYSTEM)

# Qwen3-ASR: ChatML with a system turn always present (empty unless given: the real checkpoint takes
# its recognition context there), each audio item as `<|audio_start|><|audio_pad|><|audio_end|>` in
# place; as pinned by transformers' tests/models/qwen3_asr/test_processing_qwen3_asr.py::
# test_chat_template (Qwen/Qwen3-ASR-0.6B-hf: "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n
# <|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n").
QWEN3_ASR_CHAT_TEMPLATE = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\n<|im_end|>\n{% endif %}"
                           + _chatml_template("<|audio_start|><|audio_pad|><|audio_end|>"))

# Gemma 4: its turn markers (`<|turn>ROLE\n ... <turn|>\n`, the assistant's role named `model`, bos
# first) and each audio item as a bare `<|audio|>` in place: the processor writes `<|audio>`/
# `<audio|>` (boa/eoa) around each expansion. Token names as transformers' Gemma 4 conversion
# registers them (image <|image|> <|image> <image|>, audio <|audio|> <|audio> <audio|>,
# turns <|turn> <turn|>). The real template's thinking and tool sections are left out.
GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<|audio|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<turn|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)
_GEMMA4_NAMED = {"image_token": "<|image|>", "boi_token": "<|image>", "eoi_token": "<image|>",
                 "audio_token": "<|audio|>", "boa_token": "<|audio>", "eoa_token": "<audio|>"}


def _build_glmasr(out: Path, seed: int, size: str) -> Path:
    from transformers import GlmAsrConfig, GlmAsrForConditionalGeneration, GlmAsrProcessor, WhisperFeatureExtractor

    specials = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|begin_of_audio|>", "<|pad|>",
                "<|end_of_audio|>"]
    # GLM-4 ends an assistant turn by starting the next user turn.
    tokenizer = train_tokenizer(_VOCAB, specials, eos_token="<|user|>", named_tokens={"audio_token": "<|pad|>"})
    tokenizer.chat_template = GLMASR_CHAT_TEMPLATE
    processor = GlmAsrProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
                                audio_token="<|pad|>", chat_template=GLMASR_CHAT_TEMPLATE)
    config = GlmAsrConfig(
        # The projector folds 4 encoder frames into one: intermediate_size must be 4 x hidden_size.
        audio_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                          num_mel_bins=128, max_position_embeddings=1500),
        text_config=dict(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **_LM),
        audio_token_id=tokenizer.convert_tokens_to_ids("<|pad|>"),
    )
    model = _seeded(seed, lambda: GlmAsrForConditionalGeneration(config))
    return _save(out, model, processor)


def _build_musicflamingo(out: Path, seed: int, size: str) -> Path:
    from transformers import (
        MusicFlamingoConfig,
        MusicFlamingoForConditionalGeneration,
        MusicFlamingoProcessor,
        WhisperFeatureExtractor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>", "<|sound_bos|>", "<|sound_eos|>"]
    tokenizer = train_tokenizer(_VOCAB, specials, named_tokens={"audio_token": "<sound>"})
    tokenizer.chat_template = MUSICFLAMINGO_CHAT_TEMPLATE
    processor = MusicFlamingoProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
                                       chat_template=MUSICFLAMINGO_CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    config = MusicFlamingoConfig(
        audio_config=dict(model_type="audioflamingo3_encoder", hidden_size=64, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=128, num_mel_bins=128, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **_LM),
        audio_token_id=ids["<sound>"], audio_bos_token_id=ids["<|sound_bos|>"], audio_eos_token_id=ids["<|sound_eos|>"],
    )
    model = _seeded(seed, lambda: MusicFlamingoForConditionalGeneration(config))
    return _save(out, model, processor)


def _build_qwen3_asr(out: Path, seed: int, size: str) -> Path:
    from transformers import Qwen3ASRConfig, Qwen3ASRFeatureExtractor, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_pad|>", "<|audio_end|>"]
    tokenizer = train_tokenizer(_VOCAB, specials, named_tokens={
        "audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>"})
    tokenizer.chat_template = QWEN3_ASR_CHAT_TEMPLATE
    processor = Qwen3ASRProcessor(feature_extractor=Qwen3ASRFeatureExtractor(), tokenizer=tokenizer,
                                  chat_template=QWEN3_ASR_CHAT_TEMPLATE)
    config = Qwen3ASRConfig(
        audio_config=dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128,
                          num_mel_bins=128, output_dim=64, downsample_hidden_size=32),
        text_config=dict(vocab_size=len(tokenizer), head_dim=16, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **_LM),
        audio_token_id=tokenizer.convert_tokens_to_ids("<|audio_pad|>"),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = _seeded(seed, lambda: Qwen3ASRForConditionalGeneration(config))
    return _save(out, model, processor)


def _build_gemma4(out: Path, seed: int, size: str) -> Path:
    _require("gemma4")
    from transformers import (
        Gemma4AudioFeatureExtractor,
        Gemma4Config,
        Gemma4ForConditionalGeneration,
        Gemma4ImageProcessor,
        Gemma4Processor,
        Gemma4VideoProcessor,
    )

    specials = ["<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>", *_GEMMA4_NAMED.values(), "<|video|>"]
    tokenizer = train_tokenizer(_VOCAB, specials, eos_token="<turn|>", pad_token="<pad>", bos_token="<bos>",
                                named_tokens=_GEMMA4_NAMED)
    tokenizer.chat_template = GEMMA4_CHAT_TEMPLATE
    processor = Gemma4Processor(feature_extractor=Gemma4AudioFeatureExtractor(), image_processor=Gemma4ImageProcessor(),
                                video_processor=Gemma4VideoProcessor(), tokenizer=tokenizer,
                                chat_template=GEMMA4_CHAT_TEMPLATE)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in _GEMMA4_NAMED.items()}
    config = Gemma4Config(
        # As the E2B/E4B checkpoints: sliding-window layers before a full-attention one, per-layer
        # input embeddings (PLE); no vision tower (the model builds none without a vision_config).
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=32,
                         layer_types=["sliding_attention", "full_attention"], sliding_window=512,
                         vocab_size_per_layer_input=len(tokenizer), hidden_size_per_layer_input=16,
                         max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id),
        # subsampling_conv_channels[0] must stay 128: the projection's input width is computed as
        # channels[0] // 4 * channels[1], which is the 128 mel bins // 4 only when they are equal.
        audio_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          subsampling_conv_channels=[128, 8], output_proj_dims=64),
        vision_config=None,
        boi_token_id=ids["boi_token"], eoi_token_id=ids["eoi_token"], image_token_id=ids["image_token"],
        video_token_id=tokenizer.convert_tokens_to_ids("<|video|>"),
        boa_token_id=ids["boa_token"], eoa_token_index=ids["eoa_token"], audio_token_id=ids["audio_token"],
    )
    model = _seeded(seed, lambda: Gemma4ForConditionalGeneration(config))
    return _save(out, model, processor)


@dataclass(frozen=True)
class TinyBuilder:
    """How to build one architecture's tiny checkpoint."""

    arch: str
    build: Callable[[Path, int, str], Path]
    sizes: tuple[str, ...] = ("tiny",)
    label: str = ""  # the architecture's readable name (report rows); "": its model type


BUILDERS: dict[str, TinyBuilder] = {
    b.arch: b
    for b in (
        TinyBuilder("qwen2_audio", _build_qwen2_audio, ("tiny", "small"), label="Qwen2-Audio"),
        TinyBuilder("audioflamingo3", _build_audioflamingo3, label="Audio Flamingo 3"),
        TinyBuilder("qwen2_5_omni", _build_qwen2_5_omni, label="Qwen2.5-Omni"),
        TinyBuilder("qwen3_omni_moe", _build_qwen3_omni_moe, label="Qwen3-Omni"),
        TinyBuilder("granite_speech", _build_granite_speech, label="Granite Speech"),
        TinyBuilder("phi4_multimodal", _build_phi4_multimodal, label="Phi-4-multimodal"),
        TinyBuilder("gemma3n", _build_gemma3n, label="Gemma 3n"),
        TinyBuilder("voxtral", _build_voxtral, label="Voxtral"),
        TinyBuilder("glmasr", _build_glmasr, label="GLM-ASR"),
        TinyBuilder("musicflamingo", _build_musicflamingo, label="Music Flamingo"),
        TinyBuilder("qwen3_asr", _build_qwen3_asr, label="Qwen3-ASR"),
        TinyBuilder("gemma4", _build_gemma4, label="Gemma 4"),
    )
}


def build_arch(output_dir: str | Path, arch: str = "qwen2_audio", size: str = "tiny", seed: int = 0) -> Path:
    """Write a random tiny checkpoint of `arch` to `output_dir`; raise `ArchUnavailable` saying why
    when the architecture cannot be built here."""
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(BUILDERS)}")
    builder = BUILDERS[arch]
    if size not in builder.sizes:
        raise ValueError(f"{arch}: size {size!r} is not built; choose from {', '.join(builder.sizes)}")
    return builder.build(Path(output_dir), seed, size)
