"""`resolve_device`: the device a user names, checked on this machine before any work, so
that a wrong name is blamed on the name and not on a file read later."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device a user named, checked on this machine; None: CUDA when available, else the CPU.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, a `torch.device`, or None.

    Returns:
        The device.

    Raises:
        ValueError: for a name torch does not know, an index on the CPU, or a GPU this
            machine does not have (the message says which there are).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if parsed.type == "cpu" and parsed.index not in (None, 0):
        raise ValueError(f"device {device!r}: the CPU takes no index; use 'cpu'")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to "
                             f"cuda:{count - 1}")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use 'cpu'")
    return torch.device("cpu") if parsed.type == "cpu" else parsed
