"""A training run's ``checkpoint.pt``: written atomically, read without running code.

A checkpoint holds tensors and plain values only (model, optimizer and scheduler
states, random-number-generator states, the history as JSON text), so it is read with
``torch.load(..., weights_only=True)``; a file that needs more (a pickle with objects)
is refused as unreadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cknet.persistence.files import write_atomic


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Replace ``path`` with ``state`` in one step (a kill leaves the previous file).

    Args:
        path: the checkpoint file.
        state: tensors and plain values.

    Raises:
        OSError: when it cannot be written (a full disk, a folder removed meanwhile);
            the previous checkpoint is intact.
    """
    try:
        write_atomic(path, lambda tmp: torch.save(state, tmp))
    except (OSError, RuntimeError) as err:
        raise OSError(f"could not write the checkpoint {path} (the previous one is intact): {err}") from None


def read_checkpoint(path: Path, restart: str) -> dict[str, Any]:
    """A checkpoint's state, on the CPU.

    Args:
        path: the checkpoint file.
        restart: how to start again without it, for the message.

    Returns:
        The state.

    Raises:
        ValueError: naming the file when it is empty, truncated or not a torch file of
            plain values.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # EOFError, UnpicklingError, zip errors, ...
        kind = "empty" if path.stat().st_size == 0 else f"unreadable ({type(err).__name__})"
        raise ValueError(f"{path} is {kind}: not a cknet checkpoint; {restart}") from None
