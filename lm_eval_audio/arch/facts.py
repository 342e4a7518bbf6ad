"""What differs between audio-LLM architectures, as the model layer reads it at run time.

One record per supported architecture (`ARCHS`, keyed by transformers' `config.model_type`) and
one line per refused one (`REFUSED`). Everything else about an architecture (placeholder, how
many positions a clip takes, features, sampling rate, longest clip, chat rendering) is read from
the checkpoint's processor when it loads; the tests measure those on the tiny checkpoints that
`lm-eval-audio make-tiny-model DIR --arch NAME` builds (`lm_eval_audio/tiny/archs.py`).

Which model types exist at all is transformers' own answer (`coverage.py`): every model type
whose processor takes audio and whose model generates text is either here or refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class ArchFacts:
    """The facts of one architecture that the generic audio model layer (and `finetune`) read."""

    arch: str  # config.model_type
    # The transformers auto class that loads a checkpoint of it (hf-audio, finetune).
    auto_class: str = "AutoModelForMultimodalLM"
    # Packages beyond transformers/torch without which its processor or model cannot be made, and
    # why (hf-audio refuses the architecture naming both; the tiny builder raises the same).
    requires: tuple[str, ...] = ()
    requires_why: str = ""
    # Multi-token continuations run on their context's KV cache (True) or whole (False).
    kv_reuse: bool = True
    # False: clips of different lengths in one forward change each other's outputs (the audio
    # encoder runs over the batch's padding), so batches with audio hold one context each.
    audio_padding_exact: bool = True
    # "": forward and generate run on the loaded model; else on this submodule of it.
    forward_module: str = ""
    # finetune's default LoRA targets where its generic regex (language_model.layers.N: q/k/v/o,
    # gate/up/down projections) misses this architecture's projections ("": the generic one).
    lora_targets: str = ""
    # "processor": its chat template; "tokenizer": the processor loses its template on load and
    # the tokenizer's is used instead (hf-audio says so in the log).
    chat_template_from: str = "processor"
    # "text": the prompt is text with one audio placeholder per clip, tokenised by the tokenizer.
    # "control_ids": the tokenizer backend never parses control tokens out of text (mistral-common):
    # chats are rendered to ids by the backend, control tokens travel as id markers in the prompt
    # text, and each clip's audio tensors and positions come from the backend's own chat encoding.
    prompt_route: str = "text"
    # The encoder that runs on each clip's own length instead of the stock 30 s window, with the
    # stock outputs (`arch/encoder.py`, parity tested per architecture); "": the processor's
    # features go to the model's own forward. Declared only where the stock path pads to a fixed
    # window that the encoder masks; the table says why for the others.
    own_length_encoder: str = ""


_TORCHVISION = "its processor always holds a torchvision-backend image or video processor"

ARCHS: dict[str, ArchFacts] = {
    "qwen2_audio": ArchFacts("qwen2_audio", own_length_encoder="whisper_pooled"),
    # Not in AutoModelForMultimodalLM's mapping (5.24/5.25 register it for seq2seq LM and pretraining).
    # Its encoder is Qwen2-Audio's (it masks padded keys itself); a clip is 30 s windows, the last padded.
    "audioflamingo3": ArchFacts("audioflamingo3", auto_class="AutoModelForSeq2SeqLM",
                                own_length_encoder="whisper_pooled"),
    # The loaded Omni model has no forward of its own: its thinker runs. Its mrope keeps rope deltas
    # as model state and wants 3-D positions, which a continuation on the cache does not get.
    # No own-length encoder needed (both Omni towers): the thinker packs each clip's valid frames
    # (feature_attention_mask) before its audio tower, whose cost already follows the clip.
    "qwen2_5_omni": ArchFacts("qwen2_5_omni", requires=("torchvision",), requires_why=_TORCHVISION,
                              kv_reuse=False, forward_module="thinker"),
    "qwen3_omni_moe": ArchFacts("qwen3_omni_moe", requires=("torchvision",), requires_why=_TORCHVISION,
                                kv_reuse=False, forward_module="thinker"),
    # No own-length encoder for Granite Speech, Phi-4-multimodal, Gemma 3n and Gemma 4: their audio
    # towers are not the Whisper-style 30 s-window encoder that `arch/encoder.py` runs (Conformer-type
    # encoders of their own, on features that their processors pad to the batch, not to a window).
    "granite_speech": ArchFacts("granite_speech", requires=("torchaudio",),
                                requires_why="its feature extractor computes log-mels with torchaudio",
                                audio_padding_exact=False),
    "phi4_multimodal": ArchFacts("phi4_multimodal", requires=("torchvision",), requires_why=_TORCHVISION,
                                 audio_padding_exact=False, chat_template_from="tokenizer",
                                 # its decoder is model.layers, with fused qkv and gate_up projections
                                 lora_targets=r"model\.layers\.\d+\.(self_attn\.(qkv_proj|o_proj)|mlp\.(gate_up_proj|down_proj))"),
    "gemma3n": ArchFacts("gemma3n", requires=("timm",),
                         requires_why="the model always builds its vision tower as a timm model",
                         audio_padding_exact=False),
    # No own-length encoder: its Whisper encoder takes no attention mask, so the 30 s window's padding
    # is attended to and a shorter window would change every output.
    "voxtral": ArchFacts("voxtral", requires=("mistral_common",),
                         requires_why="its tokenizer is mistral-common's Tekken (MistralCommonBackend)",
                         prompt_route="control_ids"),
    # No own-length encoder: its encoder has no attention mask, so the padding of the processor's
    # window is attended to and a shorter window would change every output.
    "glmasr": ArchFacts("glmasr"),
    # Like Audio Flamingo 3, not in AutoModelForMultimodalLM's mapping (seq2seq LM and pretraining only).
    # Audio Flamingo 3's encoder, then a rotary time embedding of each window's index and position.
    "musicflamingo": ArchFacts("musicflamingo", auto_class="AutoModelForSeq2SeqLM",
                               own_length_encoder="whisper_pooled_time"),
    # No own-length encoder needed: the processor pads to the batch's longest clip, not 30 s, and the
    # encoder runs its layers on the valid positions only (packed, windowed attention).
    "qwen3_asr": ArchFacts("qwen3_asr"),
    "gemma4": ArchFacts("gemma4", requires=("torchvision",), requires_why=_TORCHVISION),
}

_NOT_BUILT = "not supported yet: no tiny checkpoint builder, so its audio path has never run here"
_SEQ2SEQ_ASR = ("an encoder-decoder speech recogniser, not an audio LLM: no text context to score; "
                "transcribe with --model whisper or a served endpoint")
_AUDIO_OUT = "generates audio, not text"

# Model types whose processor takes audio and whose model generates text, and why hf-audio does
# not serve them. `coverage.py` fails a test when transformers adds one that is in neither table.
REFUSED: dict[str, str] = {
    "apertus1p5": _NOT_BUILT,
    "canary": _SEQ2SEQ_ASR,
    "cohere_asr": _SEQ2SEQ_ASR,
    "dia": _AUDIO_OUT + " (text-to-speech dialogue)",
    "diffusion_gemma": "a block-diffusion decoder: no left-to-right token probabilities to score",
    "dots3_note": _NOT_BUILT,
    # Its chat template (transformers' convert_fun_asr_nano_to_hf.CHAT_TEMPLATE) makes a turn's text
    # the transcription's context and puts the clip after a fixed transcription instruction.
    "fun_asr_nano": "transcription only: its chat template turns a turn's text into context for transcribing "
                    "the clip, which it places after that text, so no question can be asked of a clip",
    "gemma4_unified": _NOT_BUILT,
    "granite_speech_plus": _NOT_BUILT,
    "inkling_mm_model": _NOT_BUILT,
    "kyutai_speech_to_text": "streaming speech-to-text: one text token per 80 ms codec frame of the audio, "
                             "no text prompt to put a question in and no continuation to score after the audio",
    "moonshine": _SEQ2SEQ_ASR,
    "moonshine_streaming": _SEQ2SEQ_ASR,
    "moss_transcribe_diarize": _NOT_BUILT,
    "muse_spark": _NOT_BUILT,
    "musicgen": _AUDIO_OUT + " (music codes)",
    "musicgen_melody": _AUDIO_OUT + " (music codes)",
    "nemo_speechlm": _NOT_BUILT,
    "nemotron_h_omni": _NOT_BUILT,
    "omniasr": _NOT_BUILT,
    "pop2piano": _AUDIO_OUT + " (piano MIDI tokens transcribed from audio)",
    "seamless_m4t": _SEQ2SEQ_ASR,
    "speech_to_text": _SEQ2SEQ_ASR,
    "speecht5": _SEQ2SEQ_ASR,
    "vibevoice": _AUDIO_OUT + " (text-to-speech)",
    "vibevoice_asr": _NOT_BUILT,
    "voxtral_realtime": "streaming transcription: its processor takes audio only (mistral-common builds the "
                        "transcription request), so no question can be asked of a clip",
    "whisper": "an encoder-decoder speech recogniser: use --model whisper",
}


def facts(arch: str) -> ArchFacts:
    """The facts of architecture `arch` (a config.model_type); raises naming the known ones."""
    try:
        return ARCHS[arch]
    except KeyError:
        raise KeyError(f"no facts for architecture {arch!r}; known: {', '.join(ARCHS)}") from None


def unavailable(arch: str) -> str | None:
    """Why a supported architecture cannot run in this environment (a package that does not import), or None."""
    f = facts(arch)
    missing = [(m, import_problem(m)) for m in f.requires]
    missing = [(m, p) for m, p in missing if p is not None]
    if not missing:
        return None
    return "; ".join(f"needs '{m}', which is {p}" for m, p in missing) + f" ({f.requires_why})"
