"""Weights in safetensors, never pickle: written only when finite, read strictly, with
messages that name the file and the tensors at fault."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from cknet.persistence.files import write_atomic


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write a state dict as safetensors (on the CPU, contiguous), refusing non-finite
    weights: a diverged model is never written (and so never replaces a good one).

    Args:
        state: the tensors by name.
        path: the ``.safetensors`` file.

    Raises:
        ValueError: naming the tensors that hold NaN or infinite values.
        OSError: naming the file, the space it needs and the space free, when it cannot
            be written (a full disk).
    """
    from safetensors.torch import save_file

    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ValueError(f"refusing to save {path.parent}: the weights hold NaN or infinite values in "
                         f"{len(bad)} tensor(s): {', '.join(bad[:5])} (training diverged?); nothing was "
                         f"written or replaced")
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}
    try:
        write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    except Exception as err:  # safetensors reports a full disk as its own error, without the path
        needed = sum(t.numel() * t.element_size() for t in tensors.values())
        free = shutil.disk_usage(path.parent).free
        raise OSError(f"could not write {path} ({type(err).__name__}: {err}): it needs "
                      f"{needed / 1e6:.1f} MB and {free / 1e6:.1f} MB are free on its disk; nothing "
                      f"was replaced") from err


def load_weights(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file and check that every float tensor is finite.

    Args:
        path: the file.
        map_location: the device to load to.

    Returns:
        The tensors by name.

    Raises:
        ValueError: naming the file when it is not readable safetensors, or the tensors
            holding NaN or infinite values.
    """
    from safetensors.torch import load_file

    from cknet.devices import resolve_device

    device = resolve_device(map_location)
    try:
        state = load_file(path, device=str(device))
    except Exception as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    check_finite_state(state, path)
    return state


def check_finite_state(state: dict[str, torch.Tensor], source: Any) -> None:
    """Raise unless every floating-point tensor of a state dict is finite.

    Args:
        state: the tensors by name.
        source: where they were read from, for the message.

    Raises:
        ValueError: naming the first tensors holding NaN or infinite values.
    """
    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ValueError(f"{source} holds NaN or infinite values in {len(bad)} tensor(s): "
                         f"{', '.join(bad[:5])}")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load a state dict strictly, after checking names, shapes and dtypes.

    Args:
        model: the module.
        state: the tensors by name.
        source: where they were read from, for messages.

    Raises:
        ValueError: listing missing, unexpected, mis-shaped and mis-typed tensors.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    common = sorted(set(state) & set(expected))
    mismatched = [f"{k}: saved {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in common if state[k].shape != expected[k].shape]
    kinds = [f"{k}: saved {state[k].dtype} vs model {expected[k].dtype}" for k in common
             if state[k].is_floating_point() != expected[k].is_floating_point()]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched),
                         ("dtype mismatch", kinds)):
        if items:
            more = " ..." if len(items) > 5 else ""
            problems.append(f"{label} ({len(items)}): {'; '.join(items[:5])}{more}")
    if problems:
        raise ValueError(f"the weights in {source} do not fit the model described by its config: "
                         + " | ".join(problems))
    model.load_state_dict(state, strict=True)
    # float64 values beyond float32's range become inf in the model's tensors: check them there
    check_finite_state(model.state_dict(), f"{source} (cast to the model's types)")


MAX_INFLATION = 50
"""A torch file's members may hold at most this many times the file's size once
decompressed (torch.save stores them uncompressed: a ratio near 1)."""


def read_torch_file(source: str | os.PathLike[str] | bytes, what: str) -> Any:
    """A file that ``torch.save`` wrote, read with ``torch.load(weights_only=True)``: plain
    tensors and containers only, so nothing in it runs; a zip whose members would inflate
    past `MAX_INFLATION` times its size is refused before any is read. The one place
    cknet reads a torch file it did not write (a backbone's state dict, CheXbert's and
    RadGraph's checkpoints); its own training checkpoints are read the same way.

    Args:
        source: the file, or its bytes (a member of an archive).
        what: the file as messages name it (e.g. ``"CheXbert checkpoint chexbert.pth"``).

    Returns:
        What the file holds.

    Raises:
        ValueError: naming ``what`` and torch's first sentence, when the file needs
            unpickling of anything but plain values, is not a torch file, or would inflate.
    """
    stream: str | BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    _check_zip_sizes(stream, what)
    try:
        return torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as err:
        # torch's message goes on to suggest weights_only=False: keep its first sentence only
        reason = str(err).split("\n")[0].split(". ")[0].rstrip(".") or type(err).__name__
        raise ValueError(f"{what} cannot be read as plain tensors (torch.load with weights_only=True refused "
                         f"it: {reason}); cknet never unpickles a file that could run code") from None


def _check_zip_sizes(stream: str | BinaryIO, what: str) -> None:
    """Refuse a torch zip file whose members would inflate far beyond its size, before
    reading any of them (sizes from the zip directory)."""
    if not zipfile.is_zipfile(stream):
        return
    with zipfile.ZipFile(stream) as archive:
        inflated = sum(member.file_size for member in archive.infolist())
    if isinstance(stream, str):
        size = os.path.getsize(stream)
    else:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
    if inflated > MAX_INFLATION * max(size, 1):
        raise ValueError(f"{what} would inflate to {inflated / 1e6:.0f} MB from {size / 1e6:.1f} MB "
                         f"(more than {MAX_INFLATION}x): not a torch.save file; refused before reading")
