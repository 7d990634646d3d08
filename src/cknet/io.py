"""Safe persistence helpers: atomic writes and strict, readable state-dict checks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def write_atomic(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Raise a `ValueError` listing missing, unexpected and mis-shaped tensors of ``state``
    (read from ``source``) with respect to ``model``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: saved {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("shape mismatch", mismatched)):
            if items:
                parts.append(f"{label} ({len(items)}): {'; '.join(items[:5])}"
                             f"{' ...' if len(items) > 5 else ''}")
        raise ValueError(
            f"the weights in {source} do not fit the model described by its config: "
            + " | ".join(parts)
        )
