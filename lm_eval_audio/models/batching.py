"""Batches of audio requests: groups packed under a row limit and a padding bound, halved on out-of-memory."""

from __future__ import annotations

import logging
from typing import Callable

import torch

logger = logging.getLogger(__name__)


def pack(groups: list, size_of: Callable[[object], int], limit: int,
         length_of: Callable[[object], int] | None = None, max_padding: float = 1.0) -> list[list]:
    """Pack groups (kept whole, given longest first) into batches of at most `limit` rows, in
    order; with `length_of`, a group also starts a new batch where the batch would pad it by more
    than `max_padding` of the batch's longest (first) length."""
    batches, current, rows, width = [], [], 0, 0
    for g in groups:
        n = size_of(g)
        too_short = length_of is not None and current and length_of(g) < (1 - max_padding) * width
        if current and (rows + n > limit or too_short):
            batches.append(current)
            current, rows = [], 0
        if not current:
            width = length_of(g) if length_of is not None else 0
        current.append(g)
        rows += n
    if current:
        batches.append(current)
    return batches


class BatchSize:
    """`batch_size` as given to lm-eval: a number, or `auto` (start at `max_batch_size` and
    halve on out-of-memory; lm-eval's own probe runs text-only forwards, audio rows are longer)."""

    def __init__(self, batch_size, max_batch_size: int) -> None:
        self.auto = str(batch_size).startswith("auto")
        self.rows = int(max_batch_size) if self.auto else int(batch_size)

    def run(self, fn: Callable[[list], list], batch: list) -> list:
        """fn(batch); under `auto`, on out-of-memory halve the batch (and the limit) and retry."""
        try:
            return fn(batch)
        except torch.OutOfMemoryError:
            if not self.auto or len(batch) == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(batch) // 2
            self.rows = max(1, half)
            logger.warning("out of memory at %d groups per batch; retrying with %d", len(batch), half)
            return self.run(fn, batch[:half]) + self.run(fn, batch[half:])
