"""lm-eval requests with audio, built the same way by the model-layer tests."""

from __future__ import annotations

import numpy as np
from lm_eval.api.instance import Instance

LETTERS = [" A", " B", " C", " D"]


def clip(seconds: float, seed: int) -> dict:
    """Deterministic noise of `seconds` at 16 kHz, as lm-eval's array audio convention."""
    rng = np.random.default_rng(seed)
    return {"array": (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), "sampling_rate": 16000}


def ll(context, continuation, clips=None, doc_id=0, task="t") -> Instance:
    """A loglikelihood request (with audio when `clips` is given)."""
    args = (context, continuation) if clips is None else (context, continuation, {"audio": clips})
    return Instance("loglikelihood", {}, args, idx=0, metadata=(task, doc_id, 1))


def gen(context, clips=None, doc_id=0, max_gen_toks=10, until=("<|im_end|>",)) -> Instance:
    """A greedy generate_until request (with audio when `clips` is given)."""
    kwargs = {"until": list(until), "max_gen_toks": max_gen_toks, "do_sample": False}
    args = (context, kwargs) if clips is None else (context, kwargs, {"audio": clips})
    return Instance("generate_until", {}, args, idx=0, metadata=("t", doc_id, 1))
