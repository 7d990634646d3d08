"""Safe persistence helpers: atomic writes and strict, readable state-dict checks."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def write_dir_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_dir)`` on a fresh folder beside ``path``, then put it in place of
    ``path``: a reader sees the old folder or the complete new one, never a mix."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        write(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / path.name).exists() and not path.exists():
            os.replace(old / path.name, path)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def load_hf_pretrained(loader: Any, name_or_path: str | os.PathLike[str], what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name_or_path, **kwargs)`` for a Hugging Face hub id or a
    local folder, turning a failed download into an error that says what to do offline.

    Args:
        loader: a ``transformers`` Auto class (``AutoTokenizer``, ``AutoConfig``, ...).
        name_or_path: a hub id such as ``"emilyalsentzer/Bio_ClinicalBERT"`` or a folder.
        what: what is being loaded, for the message (e.g. ``"text encoder"``).
        **kwargs: passed to ``from_pretrained``.

    Returns:
        What the loader returns.

    Raises:
        OSError: when the files can be neither found locally nor downloaded.
    """
    name = os.fspath(name_or_path)
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as err:
        local = Path(name).expanduser()
        where = (f"the folder {local} lacks its files" if local.is_dir()
                 else f"{name!r} is neither a local folder nor reachable on the Hugging Face Hub")
        raise OSError(
            f"could not load the {what} {name!r}: {where} ({err}). To work offline, download "
            f"the model on a machine with internet access (`hf download {name} --local-dir "
            f"DIR`, or `AutoModel.from_pretrained(...).save_pretrained(DIR)` together with its "
            f"tokenizer), copy DIR here and pass its path instead of the hub id."
        ) from err


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
