"""What the hf-audio layer takes from the facts table (`lm_eval_audio.arch.facts`) per architecture.

Everything else (placeholder, expansion, features, sampling rate, clip limit, chat rendering)
is read from the checkpoint's processor at load time. From the table:

- KV reuse: whether a multi-token continuation can run on the cached context (a forward of
  the context with `use_cache=True`, then the continuation's ids alone with that cache and
  explicit positions). Where it cannot, or the table has not measured it, continuations run
  whole (context + continuation).
- the loading class (Audio Flamingo 3 is not in `AutoModelForMultimodalLM`'s mapping in 5.24);
- architectures that cannot run here, or whose prompts this text layer cannot build, get an
  error naming them and why, before any load.
"""

from __future__ import annotations

import transformers

from lm_eval_audio.arch.facts import ARCHS, import_problem


def kv_reuse(model_type: str) -> bool:
    """Whether continuations of `model_type` reuse their context's KV cache (unknown: run whole)."""
    facts = ARCHS.get(model_type)
    if facts is None or not facts.kv_reuse:
        return False
    # Omni's mrope keeps rope deltas as model state and wants 3-D positions (archs.py notes):
    # our continuation forward passes 2-D positions, so it runs whole.
    return model_type != "qwen2_5_omni"


def unsupported(model_type: str) -> str | None:
    """Why hf-audio cannot serve `model_type` here (None: it can)."""
    facts = ARCHS.get(model_type)
    if facts is None:
        return None  # not in the table: try it, the processor decides
    missing = [m for m in facts.requires if import_problem(m) is not None]
    if missing:
        why = f" ({facts.notes[0]})" if not facts.available and facts.notes else ""
        return f"needs {', '.join(missing)}, which does not import here{why}"
    if facts.prompt_route != "text":
        return ("its prompts are token ids built by its tokenizer backend (" + facts.prompt_route +
                "), not text with an audio placeholder; hf-audio's prompt layer is text-based")
    return None


def model_class(config):
    """The transformers class that loads `config` (the table's auto class where it names one)."""
    facts = ARCHS.get(config.model_type)
    if facts is not None:
        return getattr(transformers, facts.auto_class)
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
    """(model class, model_type) for `pretrained`; raises naming the architecture when it cannot work."""
    config = transformers.AutoConfig.from_pretrained(pretrained, revision=revision or "main")
    why = unsupported(config.model_type)
    if why:
        raise ValueError(f"{model}: architecture {config.model_type!r} cannot be evaluated here: {why}")
    return model_class(config), config.model_type
