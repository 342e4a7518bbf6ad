"""Batches of audio requests: groups packed under a row limit, halved on out-of-memory."""

from __future__ import annotations

import logging
from typing import Callable

import torch

logger = logging.getLogger(__name__)


def pack(groups: list, size_of: Callable[[object], int], limit: int) -> list[list]:
    """Pack groups (kept whole) into batches of at most `limit` rows, in order."""
    batches, current, rows = [], [], 0
    for g in groups:
        n = size_of(g)
        if current and rows + n > limit:
            batches.append(current)
            current, rows = [], 0
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
