"""End-of-training evaluation by the harness itself.

The trainer's numbers are the harness's numbers: `lm_eval.simple_evaluate` runs the
`qwen2audio` model class (Qwen2-Audio) or the `hf-audio` one (any other architecture) on the
base checkpoint with the adapter directory, exactly as
`lm_eval --model qwen2audio|hf-audio --model_args pretrained=BASE,peft=ADAPTER` would.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def evaluate_with_harness(
    pretrained: str,
    tasks: list[str],
    *,
    adapter: str | None = None,
    mode: str = "auto",
    batch_size: int = 16,
    limit: int | None = None,
    dtype: str = "float32",
    apply_chat_template: bool = False,
    system_instruction: str | None = None,
    include_path: list[str] | None = None,
    metadata: dict | None = None,
) -> dict[str, Any] | None:
    """lm-eval's `results` dict ({task: {"acc,none": ...}}) for the base model (+ adapter).

    Returns None on processes other than the main one of a data-parallel run (lm-eval gathers
    the scores on rank 0).
    """
    from lm_eval import simple_evaluate

    from transformers import AutoConfig

    from lm_eval_audio.models.hf_audio import HFAudioLM
    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM
    from lm_eval_audio.task_index import task_manager

    model_class = Qwen2AudioLM if AutoConfig.from_pretrained(pretrained).model_type == "qwen2_audio" else HFAudioLM
    lm = model_class(pretrained=pretrained, peft=adapter, mode=mode, batch_size=batch_size, dtype=dtype)
    out = simple_evaluate(
        model=lm,
        tasks=list(tasks),
        task_manager=task_manager(list(tasks), metadata, include_path),
        limit=limit,
        apply_chat_template=apply_chat_template,
        system_instruction=system_instruction,
        log_samples=False,
        bootstrap_iters=0,
    )
    if out is None:
        return None
    return out["results"]
