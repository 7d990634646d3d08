"""The Hugging Face Hub: a saved folder named by a hub id downloaded to the local cache
(`resolve_folder`), and Hugging Face models loaded offline first, with sizes checked and
no remote code (`load_hf_pretrained`, `check_hf_config_sizes`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_folder(
    name_or_path: str | os.PathLike[str], what: str, files: Sequence[str], revision: str | None = None
) -> Path:
    """A local folder, or a Hugging Face Hub id downloaded to the local cache.

    Args:
        name_or_path: a folder, or a hub id ``"owner/name"``.
        what: what is loaded, for messages (e.g. ``"CKNet model"``).
        files: the file patterns to download from the hub.
        revision: a hub revision (branch, tag or commit).

    Returns:
        The local folder.

    Raises:
        FileNotFoundError: for a path that does not exist and cannot be a hub id, or a
            relative path whose first folder exists here (a typo, not a hub id).
        OSError: when a hub id cannot be downloaded; the message says how to load from
            a local folder instead.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; pass the folder that save_pretrained wrote")
    name = os.fspath(name_or_path)
    first = Path(name.split("/")[0])
    if not _HUB_ID.match(name) or name.startswith((".", "/", "~")) or first.is_dir():
        hint = f" ({first}/ holds {_listing(first)})" if first.is_dir() else ""
        raise FileNotFoundError(f"no such folder: {name}{hint}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=list(files)))
    except Exception as err:
        raise OSError(
            f"could not download {what} {name!r} from the Hugging Face Hub ({type(err).__name__}: {err}), "
            f"and there is no folder {name!r} here. If you are offline, copy the saved folder to a local "
            f"directory and pass its path"
        ) from err


def _listing(folder: Path, most: int = 6) -> str:
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    shown = ", ".join(names[:most]) + (", ..." if len(names) > most else "")
    return shown or "nothing"


def check_hf_config_sizes(config: Any, source: str | os.PathLike[str]) -> Any:
    """Refuse a Hugging Face model config whose sizes are past any real model before the
    model is built (a config file can ask for anything), naming the field.

    Args:
        config: a ``transformers`` config (BERT-like fields: ``vocab_size``,
            ``hidden_size``, ``num_hidden_layers``, ``intermediate_size``).
        source: where it was read, for the message.

    Returns:
        The config.

    Raises:
        ValueError: naming the field at fault.
    """
    from cknet.limits import MAX_LAYERS, MAX_PARAMETERS

    sizes = {name: getattr(config, name, 0) or 0 for name in
             ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
              "max_position_embeddings")}
    if sizes["num_hidden_layers"] > MAX_LAYERS:
        raise ValueError(f"{os.fspath(source)}: num_hidden_layers is {sizes['num_hidden_layers']:,}, "
                         f"past the "
                         f"{MAX_LAYERS} cknet allows")
    h = sizes["hidden_size"]
    layer = 4 * h * h + 2 * h * sizes["intermediate_size"]
    counts = {"vocab_size": sizes["vocab_size"] * h,
              "max_position_embeddings": sizes["max_position_embeddings"] * h,
              "num_hidden_layers": sizes["num_hidden_layers"] * layer}
    if sum(counts.values()) > MAX_PARAMETERS:
        field = "hidden_size" if h > 16_384 else max(counts, key=counts.__getitem__)
        raise ValueError(f"{os.fspath(source)}: a model of about {sum(counts.values()):,} parameters, "
                         f"past the "
                         f"{MAX_PARAMETERS:,} cknet allows; {field} ({getattr(config, field):,}) weighs most")
    return config


def load_hf_pretrained(loader: Any, name_or_path: str | os.PathLike[str], what: str, offline: bool = False,
                       **kwargs: Any) -> Any:
    """``loader.from_pretrained(name_or_path, **kwargs)`` for a Hugging Face hub id or a
    local folder, turning a failed download into an error that says what to do offline.

    No code from the model's folder or repository ever runs: ``trust_remote_code`` is
    always False (a folder whose ``config.json`` maps its classes to its own Python files
    with ``auto_map`` is refused, or loaded with transformers' own classes).

    Args:
        loader: a ``transformers`` Auto class (``AutoTokenizer``, ``AutoConfig``, ...).
        name_or_path: a hub id such as ``"emilyalsentzer/Bio_ClinicalBERT"`` or a folder.
        what: what is being loaded, for the message (e.g. ``"text encoder"``).
        offline: look only in the folder or the Hugging Face cache, never on the Hub
            (the metric models: `cknet evaluate` is offline, and fails at once with the
            download command instead of retrying a connection). Otherwise the cache is
            looked in first and the Hub asked only when the files are not there.
        **kwargs: passed to ``from_pretrained``.

    Returns:
        What the loader returns.

    Raises:
        OSError: when the files can be neither found locally nor downloaded.
        ValueError: when asked to trust remote code, or when the model needs its own code.
    """
    name = os.fspath(name_or_path)
    if kwargs.pop("trust_remote_code", False):
        raise ValueError(f"cknet never runs code from a model folder or repository: the {what} {name!r} "
                         f"cannot be loaded with its remote code trusted")
    try:
        try:
            return loader.from_pretrained(name, trust_remote_code=False, local_files_only=True, **kwargs)
        except OSError:
            if offline or Path(name).expanduser().is_dir():
                raise
            return loader.from_pretrained(name, trust_remote_code=False, **kwargs)
    except OSError as err:
        local = Path(name).expanduser()
        where = (f"the folder {local} lacks its files" if local.is_dir()
                 else f"{name!r} is neither a local folder nor in the Hugging Face cache (cknet does not "
                      f"download this model)" if offline
                 else f"{name!r} is neither a local folder nor reachable on the Hugging Face Hub")
        raise OSError(
            f"could not load the {what} {name!r}: {where} ({err}). To work offline, download "
            f"the model on a machine with internet access (`hf download {name} --local-dir "
            f"DIR`, or `AutoModel.from_pretrained(...).save_pretrained(DIR)` together with its "
            f"tokenizer), copy DIR here and pass its path instead of the hub id."
        ) from err
