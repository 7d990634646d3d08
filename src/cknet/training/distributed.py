"""Helpers for runs under ``torchrun``: this process's rank, the world size, a barrier.

Outside a process group (one process) the rank is 0, the world size 1 and the barrier
does nothing. `process_group` joins the group ``torchrun`` starts, for ``cknet train``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
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


@contextlib.contextmanager
def process_group(device: str | None) -> Iterator[str | None]:
    """Join the process group ``torchrun`` starts (NCCL on GPUs, else Gloo) for the
    duration of a run, and leave it after; alone (``WORLD_SIZE`` unset or 1), do nothing.

    Args:
        device: the device asked for (None: CUDA when available).

    Yields:
        The device this process should use: under ``torchrun`` with CUDA, the local
        rank's GPU; otherwise ``device`` unchanged.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or initialized():
        yield device
        return
    use_cuda = torch.cuda.is_available() and device != "cpu"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        if use_cuda:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
        yield device
    finally:
        dist.destroy_process_group()
