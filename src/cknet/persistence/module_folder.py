"""Saving a module as a folder and reading it back: the one stack every saved cknet
model goes through (`CKNet` in `cknet.persistence.model_files`, `KnowledgeGraphModel` in
`cknet.modules.graph_model`).

A saved module is a folder written whole by `cknet.persistence.folders.save_folder` (its kind in the
``cknet.json`` marker) holding JSON files (configs, the graph, a history) and one
safetensors file with every weight and buffer. No pickle is involved anywhere.
`save_module` writes one; `read_module` checks the files are there and reads them under
`cknet.persistence.folders.read_folder` (one save, never a mix); `read_json` reads a JSON
file with a message naming it; `cknet.persistence.weights.load_weights` and
`cknet.persistence.weights.load_state` read the weights strictly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from cknet.persistence.folders import read_folder, save_folder
from cknet.persistence.weights import save_weights

T = TypeVar("T")


def save_module(
    directory: str | os.PathLike[str],
    kind: str,
    module: nn.Module,
    weights_file: str,
    json_files: dict[str, Any],
    text_files: dict[str, str] | None = None,
    write_more: Callable[[Path], object] | None = None,
    overwrite: bool = False,
) -> None:
    """Write a module's folder as a whole.

    Args:
        directory: the folder (created if needed).
        kind: its kind, a key of `cknet.persistence.folders.KINDS`.
        module: the module whose ``state_dict`` goes to ``weights_file``.
        weights_file: the safetensors file's name.
        json_files: file name -> JSON-ready object.
        text_files: file name -> text written as it is (a model card, a graph's JSON).
        write_more: writes anything else into the new folder (e.g. a tokenizer).
        overwrite: replace a folder of the same kind saved there.

    Raises:
        FileExistsError: if the folder holds the same kind and ``overwrite`` is False,
            or anything else.
    """

    def write(folder: Path) -> None:
        save_weights(module.state_dict(), folder / weights_file)
        for name, data in json_files.items():
            (folder / name).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        for name, text in (text_files or {}).items():
            (folder / name).write_text(text, encoding="utf-8")
        if write_more is not None:
            write_more(folder)

    save_folder(directory, kind, write, overwrite)


def read_module(folder: str | os.PathLike[str], kind: str, what: str, required: Sequence[str],
                read: Callable[[Path], T]) -> T:
    """``read(folder)`` once the folder is known to be of ``kind`` and to hold ``required``.

    Args:
        folder: the saved folder.
        kind: the kind its marker must name.
        what: what it holds, for messages (e.g. ``"saved CKNet model"``).
        required: the files that must be there.
        read: builds the object from the folder.

    Returns:
        What ``read`` returns.

    Raises:
        FileNotFoundError: for a missing folder or file (all missing files named).
        ValueError: for a folder of another kind.
    """

    def checked(path: Path) -> T:
        missing = [name for name in required if not (path / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a {what}: missing {', '.join(missing)}")
        return read(path)

    return read_folder(folder, kind, checked)


def read_json(path: Path, what: str) -> Any:
    """A JSON file's content.

    Args:
        path: the file.
        what: what it should hold, for messages (e.g. ``"a graph-model config"``).

    Returns:
        The parsed JSON.

    Raises:
        ValueError: if it is not UTF-8 JSON (the message names the file).
    """
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not {what}: {err}") from None

