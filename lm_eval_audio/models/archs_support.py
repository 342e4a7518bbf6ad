"""What the hf-audio layer must know per architecture that its processor and config do not say.

Everything else (placeholder, expansion, features, sampling rate, clip limit, chat rendering)
is read from the checkpoint's processor at load time.

- KV reuse: whether a multi-token continuation can run on the cached context (a forward of
  the context with `use_cache=True`, then the continuation's ids alone with that cache and
  explicit positions). Where it cannot, continuations run whole (context + continuation).
- Architectures that cannot run here get an error naming them and why, before any load.
"""

from __future__ import annotations

import transformers

# config.model_type -> KV reuse. Measured on tiny checkpoints (difference to a full forward
# below 1e-6 in float32); qwen2_5_omni's mrope keeps rope deltas as model state from the last
# prefix forward and wants 3-D positions, so its continuations run whole.
KV_REUSE = {
    "qwen2_audio": True,
    "audioflamingo3": True,
    "granite_speech": True,
    "voxtral": True,
    "qwen2_5_omni": False,
    "gemma3n": False,  # its KV-shared layers and per-layer inputs are not verified with an external cache
    "phi4_multimodal": False,
}

# model_type -> why hf-audio cannot serve it (checked before loading).
UNSUPPORTED: dict[str, str] = {}


def kv_reuse(model_type: str) -> bool:
    """Whether continuations of `model_type` reuse their context's KV cache (unknown: run whole)."""
    return KV_REUSE.get(model_type, False)


def model_class(config):
    """The transformers class that loads `config`: `AutoModelForMultimodalLM` where its mapping
    has the architecture, else the class the checkpoint names (Audio Flamingo 3 in 5.24 is only
    mapped for seq2seq LM and pre-training)."""
    auto = transformers.AutoModelForMultimodalLM
    if type(config) in auto._model_mapping:
        return auto
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise ValueError(f"hf-audio: architecture {config.model_type!r} is not loadable by AutoModelForMultimodalLM "
                     f"and its config names no transformers class")


def check_loadable(pretrained: str, model: str, revision: str | None = None):
    """The model class for `pretrained`; raises naming the architecture when it cannot work."""
    config = transformers.AutoConfig.from_pretrained(pretrained, revision=revision or "main")
    why = UNSUPPORTED.get(config.model_type)
    if why:
        raise ValueError(f"{model}: architecture {config.model_type!r} is not supported: {why}")
    return model_class(config)
