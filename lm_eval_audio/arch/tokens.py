"""Audio placeholders in token ids: the one expansion rule of the project.

A processor-format prompt carries one placeholder token per clip; the model reads one
placeholder position per audio embedding of that clip. Evaluation (`models/`), fine-tuning
(`finetune/collate.py`) and the benchmark's naive reference (`bench/_harness.py`) all expand
through `expand_placeholders`, so they cannot disagree on where audio goes.
"""

from __future__ import annotations


def expand_placeholders(ids: list[int], placeholder_id: int, counts: list[int], *, name: str = "request") -> list[int]:
    """Repeat the k-th placeholder id `counts[k]` times (its clip's number of audio positions).

    Raises ValueError naming `name` when the prompt's placeholders and the clips disagree.
    """
    out: list[int] = []
    k = 0
    for t in ids:
        if t == placeholder_id:
            if k >= len(counts):
                raise ValueError(f"{name}: more audio placeholder tokens than clips ({len(counts)})")
            out.extend([t] * counts[k])
            k += 1
        else:
            out.append(t)
    if k != len(counts):
        raise ValueError(f"{name}: prompt has {k} audio placeholder tokens for {len(counts)} clips")
    return out
