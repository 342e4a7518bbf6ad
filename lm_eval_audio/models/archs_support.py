"""What the hf-audio layer takes from the facts table (`lm_eval_audio.arch.facts`) per architecture.

Everything else (placeholder, expansion, features, sampling rate, clip limit, chat rendering)
is read from the checkpoint's processor at load time. From the table:

- KV reuse: whether a multi-token continuation can run on the cached context (a forward of
  the context with `use_cache=True`, then the continuation's ids alone with that cache and
  explicit positions). Where it cannot, or the table has not measured it, continuations run
  whole (context + continuation).
- the loading class (Audio Flamingo 3 is not in `AutoModelForMultimodalLM`'s mapping in 5.24);
- the own-length audio encoder, where the architecture has one (`arch/encoder.py`);
- the submodule forward and generate run on (an Omni model's thinker), and where the chat
  template comes from (the tokenizer's, where the processor loses its own on load);
- architectures refused by name, or that need a package that does not import here, get an
  error naming them and why, before any load.
"""

from __future__ import annotations

import logging

import transformers

from lm_eval_audio.arch.facts import ARCHS, REFUSED, unavailable

logger = logging.getLogger(__name__)


def kv_reuse(model_type: str) -> bool:
    """Whether continuations of `model_type` reuse their context's KV cache (unknown: run whole)."""
    facts = ARCHS.get(model_type)
    return bool(facts is not None and facts.kv_reuse)


def audio_padding_exact(model_type: str) -> bool:
    """Whether clips of different lengths may share a forward without changing each other's outputs."""
    facts = ARCHS.get(model_type)
    return facts is None or facts.audio_padding_exact


def own_length_encoder(model_type: str) -> str:
    """The architecture's own-length audio encoder (`arch/encoder.py`), or "" where it has none."""
    facts = ARCHS.get(model_type)
    return facts.own_length_encoder if facts is not None else ""


def forward_module(model_type: str) -> str:
    """The submodule of the loaded model that forward and generate run on ("": the model itself)."""
    facts = ARCHS.get(model_type)
    return facts.forward_module if facts is not None else ""


def prompt_route(model_type: str) -> str:
    """How prompts are built: "text", or "control_ids" for a backend that renders chats to ids."""
    facts = ARCHS.get(model_type)
    return facts.prompt_route if facts is not None else "text"


def load_processor(source: str, model_type: str, revision: str | None = None):
    """The checkpoint's processor, with the tokenizer's chat template where the facts table says
    the processor loses its own on load."""
    processor = transformers.AutoProcessor.from_pretrained(source, revision=revision or "main")
    facts = ARCHS.get(model_type)
    if facts is not None and facts.chat_template_from == "tokenizer" and processor.chat_template is None:
        template = getattr(processor.tokenizer, "chat_template", None)
        if template:
            logger.info("%s: the processor has no chat template after loading; using its tokenizer's", model_type)
            processor.chat_template = template
    return processor


def unsupported(model_type: str) -> str | None:
    """Why hf-audio cannot serve `model_type` here (None: it can)."""
    if model_type in REFUSED:
        return REFUSED[model_type]
    if model_type not in ARCHS:
        return None  # not in the tables: try it, the processor decides
    return unavailable(model_type)


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
