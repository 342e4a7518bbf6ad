"""lm-eval 0.4.13's own `hf-audiolm-qwen`, with only the patches it needs to run here.

The benchmark compares our model class against the class people use today, so that class must
run as shipped except where it cannot run at all on CPU with transformers 5. Patches, all
applied at runtime (lm-eval's installed files are never edited):

1. Registration. `lm_eval.models.MODEL_MAPPING` points the alias at
   `lm_eval.models.hf_audiolm:HFAudioLM`, but the class is named `HFAUDIOLMQWEN`; importing the
   module makes its `@register_model` decorator raise ("alias already registered"). We point the
   placeholder at the real class name before importing the module.
2. `audios=` -> `audio=`. transformers 5's `Qwen2AudioProcessor` takes `audio=`; given `audios=`
   it drops the clips and raises "Found 1 <|AUDIO|> tokens ... but no audio inputs". We wrap the
   processor so the keyword is renamed on the way in; nothing else about the call changes.
3. Hard-coded CUDA. `generate_until` moves `input_ids` with `.to("cuda")`; on a machine without
   CUDA that raises. While that method runs, a `.to("cuda")` with CUDA unavailable goes to the
   model's device instead. With CUDA present the patch does nothing.

Left as shipped, because they are what is being measured: padding side (the tokenizer's), the
30 s audio window, the full-vocabulary logits, `gc.collect()` and `torch.cuda.empty_cache()`
after every batch, and the rest of its batching.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

ALIAS = "hf-audiolm-qwen"
REAL_TARGET = "lm_eval.models.hf_audiolm:HFAUDIOLMQWEN"

PATCHES = (
    "registry placeholder re-pointed from HFAudioLM to the real class name HFAUDIOLMQWEN",
    "processor call: keyword audios= renamed to audio= (transformers 5)",
    ".to('cuda') inside generate_until sent to the model's device when CUDA is unavailable",
)


def _fix_registration() -> None:
    import lm_eval.models  # noqa: F401  (registers the built-in placeholders first)
    from lm_eval.api.registry import model_registry

    current = model_registry._objs.get(ALIAS)
    # Replace only the broken placeholder string; a materialised class stays as it is.
    if current is None or isinstance(current, str):
        model_registry._objs[ALIAS] = REAL_TARGET


class _AudioKeywordProcessor:
    """Forwards everything to the wrapped processor, renaming `audios=` to `audio=` in calls."""

    def __init__(self, processor: Any) -> None:
        self._processor = processor

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "audios" in kwargs:
            kwargs["audio"] = kwargs.pop("audios")
        return self._processor(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)


@contextlib.contextmanager
def _cuda_to_model_device(device: torch.device):
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.to

    @functools.wraps(original)
    def to(self, *args, **kwargs):
        if args and isinstance(args[0], str) and args[0] == "cuda":
            args = (device, *args[1:])
        if kwargs.get("device") == "cuda":
            kwargs["device"] = device
        return original(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = original


def patched_class() -> type:
    """lm-eval's `HFAUDIOLMQWEN` with the three patches above, registered as `hf-audiolm-qwen`."""
    _fix_registration()
    from lm_eval.api.registry import get_model

    base = get_model(ALIAS)

    class PatchedHFAudioLMQwen(base):
        """lm-eval's class, patched only where it cannot run on CPU with transformers 5."""

        def _create_tokenizer(self, *args: Any, **kwargs: Any) -> None:
            super()._create_tokenizer(*args, **kwargs)
            self.processor = _AudioKeywordProcessor(self.processor)

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            with _cuda_to_model_device(self.device):
                return super().generate_until(requests, disable_tqdm=disable_tqdm)

    PatchedHFAudioLMQwen.__name__ = PatchedHFAudioLMQwen.__qualname__ = "PatchedHFAudioLMQwen"
    return PatchedHFAudioLMQwen
