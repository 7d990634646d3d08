"""Helpers for runs under ``torchrun``: this process's rank, the world size, a barrier.

Outside a process group (one process) the rank is 0, the world size 1 and the barrier
does nothing.
"""

from __future__ import annotations

import torch.distributed as dist


def initialized() -> bool:
    """Whether a process group is running."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 alone)."""
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    """The number of processes (1 alone)."""
    return dist.get_world_size() if initialized() else 1


def barrier() -> None:
    """Wait until every process gets here."""
    if initialized():
        dist.barrier()
