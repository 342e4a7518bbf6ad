"""The process group that `accelerate launch` or torchrun opened, closed before the interpreter
tears down.

lm-eval never destroys the process group. With gloo (CPU ranks), a rank that exits while gloo's
worker threads still hold finished work objects can abort in interpreter finalisation ("terminate
called without an active exception", SIGABRT); the launcher then kills the other rank before it
writes its results. `python -m bench.gloo_exit` counts it: 16 of 40 two-rank launches aborted
without this handler, 0 of 40 with it. The handler destroys the group in `atexit`, while the
interpreter is still whole. Only gloo is closed here: its destruction is local to the rank,
whereas NCCL's can wait on ranks that have already failed.
"""

from __future__ import annotations

import atexit
import logging

logger = logging.getLogger(__name__)


def _destroy_if_gloo() -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_backend() == "gloo":
        dist.destroy_process_group()
        logger.debug("gloo process group destroyed at exit")


def close_gloo_group_at_exit() -> None:
    """Where this process is one rank of a group, register the exit handler that destroys the
    group if it is gloo (a second registration is harmless: the group is destroyed once)."""
    try:
        import torch.distributed as dist
    except ImportError:  # no torch: no process group
        return
    if dist.is_available() and dist.is_initialized():
        atexit.register(_destroy_if_gloo)
