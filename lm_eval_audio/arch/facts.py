"""What differs between audio-LLM architectures in transformers 5.24, one frozen record each.

The `hf-audio` model layer reads these instead of hard-coding Qwen2-Audio. Every value was taken
from the installed transformers source or measured on the tiny checkpoint that
`lm-eval-audio make-tiny-model DIR --arch NAME` builds (`tiny_archs.py`); `tests/test_archs.py`
asserts them on the real objects. Measured numbers (KV-reuse differences) are float32 on CPU.

Vocabulary of the fields:
- expansion `processor`: the text carries one placeholder per clip and the processor repeats it
  to the clip's number of audio positions (so `input_ids` holds N placeholder ids that the model
  overwrites with audio embeddings); `model`: the model expands it itself.
- kv_reuse: a forward of the context (audio in it) with `use_cache=True`, then a forward of the
  continuation ids alone with that cache and no audio inputs, gives the logits of one full
  forward (max abs difference `kv_reuse_diff`, continuation ids " B C D" after a 3 s clip).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def import_problem(module: str) -> str | None:
    """Why `module` cannot be used here ("not installed", or its import error), or None.

    The one check behind every "this architecture needs X" decision: a wheel built for another
    torch or CUDA is found by `find_spec` and fails only when imported, so both are tried.
    """
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:
        importlib.import_module(module)
    except Exception as err:  # any import-time failure means the same: unusable, and why
        return f"installed but does not import: {err}"
    return None

# transformers' generic chat-template audio item (ProcessorMixin.apply_chat_template reads the
# clip from "audio", "url" or "path"); every architecture here takes the same form.
AUDIO_ITEM_KEYS = ("audio", "url", "path")


@dataclass(frozen=True)
class ArchFacts:
    """The facts of one architecture that a generic audio model layer needs."""

    arch: str  # config.model_type
    model_class: str  # what the auto class below instantiates
    processor_class: str
    audio_placeholder: str | None  # the placeholder as it appears in prompt text; None: set by the checkpoint's tokenizer
    tokens_per_clip: str  # how many audio positions a clip gets
    chat_audio_rendering: str  # what the (saved) chat template renders for one audio item
    max_seconds: float | None  # longest clip the processor keeps; None: no limit of its own
    max_seconds_from: str  # where max_seconds comes from
    audio_inputs: tuple[str, ...]  # processor outputs besides input_ids/attention_mask
    kv_reuse: bool | None  # None: not measured (architecture unavailable here)
    kv_reuse_diff: float | None
    logits_to_keep: bool | None  # does forward honour logits_to_keep (return only the last k positions)?
    # The values below are shared by most architectures; an entry states only where it differs.
    auto_class: str = "AutoModelForMultimodalLM"  # transformers auto class that loads it from a directory
    placeholder_attr: str = "audio_token"  # processor attribute holding the placeholder
    expansion: str = "processor"  # "processor" or "model" (see module docstring)
    default_chat_template: bool = False  # does transformers itself provide a template for the processor?
    feature_extractor_attr: str = "feature_extractor"  # processor attribute holding the feature extractor
    sampling_rate: int = 16000
    audio_kwarg: str = "audio"  # processor keyword for audio
    forward_module: str = ""  # "": the loaded model itself; else the attribute to call forward/generate on
    language_model: str = "model.language_model"  # module paths, relative to the loaded model
    lm_head: str = "lm_head"
    embeddings: str = "model.language_model.embed_tokens"
    # "text": render the chat template to text, then processor(text=..., audio=[...]);
    # "chat_ids": only processor.apply_chat_template(..., tokenize=True, return_dict=True) takes
    # audio (processor(text) refuses the placeholder), so prompts are token ids, never text.
    prompt_route: str = "text"
    chat_audio_keys: tuple[str, ...] = AUDIO_ITEM_KEYS  # keys an audio content item may carry the clip in
    cache_kwarg: str = "cache"  # 5.24 renamed past_key_values -> cache (old name warns, removed in 5.40)
    requires: tuple[str, ...] = ()  # packages beyond transformers/torch
    available: bool = True  # can the tiny checkpoint be built and run here?
    notes: tuple[str, ...] = field(default_factory=tuple)


def _unmeasured(arch: str, model_class: str, processor_class: str, *, requires: tuple[str, ...], why: str,
                **paths: str) -> ArchFacts:
    """An architecture that cannot be built here: what the source says, nothing measured."""
    return ArchFacts(
        arch=arch, model_class=model_class, processor_class=processor_class, audio_placeholder=None,
        tokens_per_clip="not measured", chat_audio_rendering="not measured", max_seconds=None,
        max_seconds_from="not measured", audio_inputs=(), kv_reuse=None, kv_reuse_diff=None, logits_to_keep=None,
        requires=requires, available=False, notes=(why,), **paths,
    )


_WHISPER_TOKENS = "((L-1)//2+1-2)//2+1 for L valid mel frames (100 per s): 75 at 3 s, 250 at 10 s, 750 at 30 s"

ARCHS: dict[str, ArchFacts] = {
    "qwen2_audio": ArchFacts(
        arch="qwen2_audio",
        model_class="Qwen2AudioForConditionalGeneration",
        processor_class="Qwen2AudioProcessor",
        audio_placeholder="<|AUDIO|>",
        tokens_per_clip=_WHISPER_TOKENS,
        chat_audio_rendering="Audio {n}: <|audio_bos|><|AUDIO|><|audio_eos|>\n",
        default_chat_template=True,  # Qwen2AudioProcessor.default_chat_template
        max_seconds=30.0,
        max_seconds_from="feature_extractor.chunk_length (n_samples / sampling_rate): longer clips are cut",
        audio_inputs=("input_features", "feature_attention_mask"),
        kv_reuse=True,
        kv_reuse_diff=1.8e-7,
        logits_to_keep=False,
        notes=(
            "forward has no logits_to_keep parameter: it is swallowed by **kwargs and every position's "
            "logits come back (slice them yourself, or call model.model + lm_head on the scored positions)",
            "the encoder only takes the full 30 s window (3000 frames); see lm_eval_audio.arch.encoder",
        ),
    ),
    "audioflamingo3": ArchFacts(
        arch="audioflamingo3",
        model_class="AudioFlamingo3ForConditionalGeneration",
        # Not in MODEL_FOR_MULTIMODAL_LM_MAPPING of 5.24 (AutoModelForMultimodalLM raises
        # "Unrecognized configuration class"); it is registered for seq2seq-LM and pretraining.
        auto_class="AutoModelForSeq2SeqLM",
        processor_class="AudioFlamingo3Processor",
        audio_placeholder="<sound>",
        tokens_per_clip=_WHISPER_TOKENS + "; summed over the clip's 30 s windows",
        chat_audio_rendering="<sound>",
        max_seconds=600.0,
        max_seconds_from="processor.max_audio_len (windows of feature_extractor.chunk_length = 30 s): longer clips are cut",
        audio_inputs=("input_features", "input_features_mask"),
        kv_reuse=True,
        kv_reuse_diff=2.4e-7,
        logits_to_keep=True,
        notes=(
            "the chat template renders audio items before the text of their turn",
            "processor(text=[...], audio=[...]) wants one clip per text (len(text) == len(audio))",
            "the processor only returns PyTorch tensors",
        ),
    ),
    "granite_speech": ArchFacts(
        arch="granite_speech",
        model_class="GraniteSpeechForConditionalGeneration",
        processor_class="GraniteSpeechProcessor",
        audio_placeholder="<|audio|>",
        tokens_per_clip="audio_processor's audio_embed_sizes: ceil(mel frames / 2 / window 15) * (15 // downsample 5): 30 at 3 s, 102 at 10 s",
        chat_audio_rendering="<|audio|>",
        feature_extractor_attr="audio_processor",
        max_seconds=None,
        max_seconds_from="none: GraniteSpeechFeatureExtractor pads to the batch's longest clip and has no maximum",
        audio_inputs=("input_features", "input_features_mask"),
        kv_reuse=True,
        kv_reuse_diff=1.8e-7,
        logits_to_keep=True,
        requires=("torchaudio",),
        # torchaudio on PyPI is linked against CUDA builds of torch (libc10_cuda.so): with
        # torch 2.13+cpu it does not import, and GraniteSpeechFeatureExtractor requires it.
        available=False,
        notes=(
            "GraniteSpeechFeatureExtractor computes log-mels with torchaudio.transforms.MelSpectrogram",
            "the real checkpoints carry a LoRA adapter (has_lora_adapter) that peft turns on only for "
            "requests with audio; text-only requests run the plain Granite LM",
            "the real chat template takes string content with <|audio|> written in it",
        ),
    ),
    "qwen2_5_omni": ArchFacts(
        arch="qwen2_5_omni",
        # AutoModelForMultimodalLM maps model_type qwen2_5_omni to the whole Omni model (thinker,
        # plus talker and token2wav unless config.enable_audio_output is False); the thinker's
        # own model_type (qwen2_5_omni_thinker) is not in the mapping.
        model_class="Qwen2_5OmniForConditionalGeneration",
        processor_class="Qwen2_5OmniProcessor",
        audio_placeholder="<|AUDIO|>",  # processor.audio_token = tokenizer.audio_token
        tokens_per_clip=_WHISPER_TOKENS,
        chat_audio_rendering="<|audio_bos|><|AUDIO|><|audio_eos|>",
        max_seconds=30.0,
        max_seconds_from="feature_extractor.chunk_length (padding='max_length' is forced): longer clips are cut",
        audio_inputs=("input_features", "feature_attention_mask"),
        forward_module="thinker",
        language_model="thinker.model.language_model",
        lm_head="thinker.lm_head",
        embeddings="thinker.model.language_model.embed_tokens",
        kv_reuse=True,
        kv_reuse_diff=1.5e-7,
        logits_to_keep=False,
        requires=("torchvision",),
        # Qwen2_5OmniProcessor always holds a Qwen2VLVideoProcessor, which needs torchvision; the
        # torchvision wheels here need torch 2.14 or a CUDA build, so the processor cannot be made.
        available=False,
        notes=(
            "the loaded Omni model has no forward of its own (nn.Module._forward_unimplemented): "
            "call model.thinker for forward and generate",
            "from_pretrained needs spk_dict.pt next to the weights, and Omni.generate needs speaker "
            "'Chelsie' in it even with generation_mode='text'; thinker.generate needs neither",
            "load with enable_audio_output=False to skip the talker and token2wav",
            "thinker.forward swallows logits_to_keep in **kwargs and returns every position",
            "KV reuse: the continuation must be run without attention_mask (or with explicit 3-D "
            "position_ids); with the full-length mask the mrope position ids come out full-length "
            "and the forward fails. rope_deltas are kept as state on thinker.model from the last "
            "prefix forward: one context at a time",
            "measured on the thinker alone (features from WhisperFeatureExtractor, placeholders expanded by hand)",
        ),
    ),
    "phi4_multimodal": _unmeasured(
        # the placeholder is tokenizer.audio_token, repeated to audio_embed_sizes by the processor
        "phi4_multimodal", "Phi4MultimodalForCausalLM", "Phi4MultimodalProcessor",
        feature_extractor_attr="audio_processor",
        language_model="model", embeddings="model.embed_tokens",
        requires=("torchvision",),
        why="Phi4MultimodalProcessor always holds Phi4MultimodalImageProcessor, a torchvision-backend image "
            "processor; torchvision has no CPU build for torch 2.13 here",
    ),
    "gemma3n": _unmeasured(
        # AutoModelForMultimodalLM reaches it through the image-text-to-text mapping; the
        # placeholder is tokenizer.audio_token, repeated audio_seq_length times between boa/eoa
        "gemma3n", "Gemma3nForConditionalGeneration", "Gemma3nProcessor",
        requires=("timm",),
        why="the model always builds its vision tower as a TimmWrapperModel, and timm needs torchvision, "
            "which has no CPU build for torch 2.13 here",
    ),
    "voxtral": ArchFacts(
        arch="voxtral",
        model_class="VoxtralForConditionalGeneration",
        processor_class="VoxtralProcessor",
        audio_placeholder="[AUDIO]",  # processor.audio_token = tokenizer.convert_ids_to_tokens(24): id 24 is fixed
        tokens_per_clip="375 per started 30 s chunk (frame_rate 12.5 of tekken.json's audio section): 375 at 3 s, 375 at 10 s, 750 at 40 s",
        chat_audio_rendering="[BEGIN_AUDIO] then [AUDIO] x tokens (mistral-common encodes the turn to ids)",
        max_seconds=None,
        max_seconds_from="none: clips are padded to a multiple of 30 s (pad_to_multiple_of=480000) and split "
                         "into 3000-frame chunks, each one input_features row",
        audio_inputs=("input_features",),
        kv_reuse=True,
        kv_reuse_diff=1.5e-7,
        logits_to_keep=True,
        prompt_route="chat_ids",
        chat_audio_keys=("path", "url", "base64"),  # no arrays: MistralCommonBackend loads files or base64
        requires=("mistral_common",),
        notes=(
            "the tokenizer is mistral-common's Tekken (tekken.json, MistralCommonBackend); there is no "
            "jinja chat template: mistral-common renders [INST] ... [/INST] turns itself",
            "AutoProcessor picks MistralCommonBackend only when config.json (model_type voxtral) sits "
            "next to tekken.json",
            "processor.apply_chat_template returns token ids even with tokenize=False",
            "a clip in a chat item must be a file path, URL or base64 of an audio file, never an array",
        ),
    ),
}


def facts(arch: str) -> ArchFacts:
    """The facts of architecture `arch` (a config.model_type); raises naming the known ones."""
    try:
        return ARCHS[arch]
    except KeyError:
        raise KeyError(f"no facts for architecture {arch!r}; known: {', '.join(ARCHS)}") from None
