"""Safe file helpers: atomic writes with the umask's modes, weights in safetensors with
strict, readable checks, and Hugging Face loading that says what to do offline.

An atomic write goes to ``.NAME.PID.RANDOM.tmp`` beside the target and is renamed into
place, so a reader or a kill never sees half a file; the temporary files of killed
writers (whose process is gone) are removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine.

    Args:
        pid: the process id.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LOCK_FILE = ".cknet.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold ``folder/.cknet.lock`` while a command writes into ``folder`` (a training run,
    a prepared dataset): a second command on the same folder is refused, naming the
    holder. A lock left by a process that no longer runs on this machine is taken over.

    Args:
        folder: the folder, which must exist.
        what: the work, for the holder's line (e.g. ``"cknet train"``).

    Raises:
        FileExistsError: when another live process holds the folder.
    """
    import datetime
    import socket

    path = Path(folder) / LOCK_FILE
    host = socket.gethostname()
    line = f"{os.getpid()} {host} {datetime.datetime.now().isoformat(timespec='seconds')} {what}\n"
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = path.read_text(encoding="utf-8", errors="replace").split(maxsplit=3)
            pid = int(holder[0]) if holder and holder[0].isdigit() else -1
            if len(holder) >= 2 and holder[1] == host and not process_alive(pid):
                path.unlink(missing_ok=True)  # its holder is gone
                continue
            said = " ".join(holder[3:]).strip() or "another command"
            raise FileExistsError(
                f"{folder} is in use by {said} (process {pid} on {holder[1] if len(holder) > 1 else '?'}, "
                f"since {holder[2] if len(holder) > 2 else '?'}): wait for it to finish; if that process "
                f"is gone, remove {path}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as fh:
        fh.write(line)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def set_default_mode(path: Path, directory: bool = False) -> None:
    """Give a file (0o666) or folder (0o777) the mode the umask allows, as ``open`` and
    ``mkdir`` would (temporary files are created private).

    Args:
        path: the file or folder.
        directory: whether it is a folder.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def temporary_path(path: Path, suffix: str = "tmp") -> Path:
    """A fresh name beside ``path`` for a temporary file or folder of this process.

    Args:
        path: the final path.
        suffix: ``"tmp"`` or ``"old"``.
    """
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{suffix}"


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files and folders that killed writers of ``path`` left
    beside it (``.NAME.PID.*.tmp`` or ``.old`` whose process is gone).

    Args:
        path: the file or folder being written.
    """
    import shutil

    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]+\.(?:tmp|old)$")
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            match = pattern.match(entry.name)
            if match and not process_alive(int(match.group(1))):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()


def write_atomic(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically.

    Args:
        path: the final file.
        write: writes the file at the given path.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    try:
        write(os.fspath(tmp))
        set_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Args:
        path: the file.
        text: its content.
    """
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


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
