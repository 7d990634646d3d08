"""Saved folders: written whole, marked with their kind, read back consistently.

Every folder cknet writes holds a marker, ``cknet.json``: ``{"kind", "format", "cknet",
"save_id"}``. The kinds are ``"model"`` (`CKNet.save_pretrained`), ``"graph_model"``
(`KnowledgeGraphModel.save_pretrained`), ``"run"`` (a training run), ``"demo"`` and
``"dataset"`` (written by ``cknet prepare``). Every writer
checks it, so that no command writes into a folder of another kind, and every reader
checks it, so that a graph model is never read as a model.

`save_folder` writes a new folder beside the old one and swaps the two in one step
(``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, between which the
folder is briefly absent), so a reader or a kill never sees a half-written folder;
without ``overwrite`` the final rename refuses to replace anything, so of two writers
exactly one wins. Readers hold a shared advisory lock (``flock`` on the parent folder)
while they read the files, and a writer takes it exclusively only for the swap, so a
reader racing a writer gets the old folder or the new one, never a mix; where there
is no ``flock``, `read_folder` compares the marker's ``save_id`` before and after
reading and reads again when it changed. Temporary folders of killed writers are removed by
the next writer (their names carry the writer's process id).

Only the marker makes a folder cknet's: a folder without one (a Hugging Face model
folder with its own ``config.json`` and ``model.safetensors``, a folder of the user's) is
never replaced, and never read as a cknet folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cknet.persistence.files import remove_stale_temporaries, set_default_mode, temporary_path
from cknet.version import __version__

MARKER = "cknet.json"
FORMAT = 2
KINDS = {"model": "a saved CKNet model", "graph_model": "a saved knowledge-graph model",
         "run": "a training run", "demo": "a cknet demo folder", "dataset": "a dataset prepared by cknet"}
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
T = TypeVar("T")


def folder_kind(folder: str | os.PathLike[str]) -> str | None:
    """What a folder holds: a kind of `KINDS`, or None (missing, empty, or without the
    marker that cknet writes into every folder it saves).

    Args:
        folder: the folder.

    Returns:
        The kind.

    Raises:
        ValueError: when the marker is unreadable or names an unknown kind.
    """
    folder = Path(folder)
    marker = folder / MARKER
    return read_marker(folder)["kind"] if marker.is_file() else None


def read_marker(folder: Path) -> dict[str, Any]:
    """The marker of a folder written by this version (`MARKER`).

    Args:
        folder: the folder.

    Returns:
        The marker's content.

    Raises:
        ValueError: naming the file when it is not a cknet marker.
    """
    path = folder / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a cknet folder marker: {err}") from None
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise ValueError(f"{path} is not a cknet folder marker (expected a 'kind' among {sorted(KINDS)})")
    return data


def check_kind(folder: Path, kind: str, writing: bool) -> str | None:
    """Raise unless ``folder`` is absent, empty, or holds ``kind``.

    Args:
        folder: the folder.
        kind: the kind expected.
        writing: phrase the error for a writer (True) or a reader.

    Returns:
        The folder's kind (None when absent or empty).

    Raises:
        FileExistsError: (writing) for a file, or a folder holding something else.
        FileNotFoundError: (reading) for an empty folder.
        ValueError: (reading) for a folder of another kind, or one without the marker.
    """
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder")
    found = folder_kind(folder) if folder.is_dir() else None
    if found is None and writing and folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} is not empty and holds no cknet {kind.replace('_', ' ')}: choose another "
            f"folder (cknet replaces only folders it wrote itself)"
        )
    if found is None and not writing and folder.is_dir() and not any(folder.iterdir()):
        raise FileNotFoundError(f"{folder} is empty: it holds no {KINDS[kind].removeprefix('a ')}")
    if found is None and not writing and folder.is_dir():
        raise ValueError(f"{folder} is not {KINDS[kind]}: it has no {MARKER}, which cknet writes into every "
                         f"folder it saves (was it written by another tool, or copied without that file?)")
    if found is not None and found != kind:
        message = f"{folder} holds {KINDS[found]}, not {KINDS[kind]}"
        if writing:
            raise FileExistsError(message + ": choose another folder")
        raise ValueError(message)
    return found


def save_folder(
    folder: str | os.PathLike[str], kind: str, write: Callable[[Path], object], overwrite: bool = False
) -> None:
    """Write a folder as a whole: ``write(tmp)`` fills a fresh folder beside ``folder``,
    the marker is added, and the new folder takes the place of the old one at once.

    Args:
        folder: the folder to write.
        kind: what it holds, a key of `KINDS`.
        write: fills the given (empty) folder with the files.
        overwrite: replace a folder of the same kind; otherwise it must not exist (or be
            empty). A symbolic link to a folder has its target replaced.

    Raises:
        FileExistsError: if ``folder`` holds something of another kind, or the same kind
            without ``overwrite`` (also when another process saved there first).
    """
    folder = Path(folder)
    if folder.is_symlink():  # replace what the link points to; the link stays a link
        folder = Path(os.path.realpath(folder))
    found = check_kind(folder, kind, writing=True)
    if found is not None and not overwrite:
        raise FileExistsError(f"{folder} already holds {KINDS[kind]}; pass overwrite=True to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    tmp = temporary_path(folder)
    tmp.mkdir()
    try:
        write(tmp)
        marker = {"kind": kind, "format": FORMAT, "cknet": __version__, "save_id": uuid.uuid4().hex}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        set_default_mode(tmp, directory=True)
        with _locked(folder, exclusive=True):  # no reader is inside while the folders move
            if found is None:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # an empty folder the user made; rename would not replace it
                if not _rename_noreplace(tmp, folder):
                    raise FileExistsError(f"{folder} was written by another process first; not replaced")
            else:
                _swap(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_folder(folder: str | os.PathLike[str], kind: str, read: Callable[[Path], T], tries: int = 10) -> T:
    """``read(folder)`` with the guarantee that every file came from one save.

    Args:
        folder: a folder of the given kind.
        kind: the kind expected.
        read: reads the files and returns the object.
        tries: how often to read again when a writer replaced the folder meanwhile.

    Returns:
        What ``read`` returns.

    Raises:
        FileNotFoundError: for a missing folder.
        ValueError: for a folder of another kind.
    """
    folder = Path(folder)
    for attempt in range(tries):
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
        check_kind(folder, kind, writing=False)
        before = _save_id(folder)
        try:
            with _locked(folder, exclusive=False):
                result = read(folder)
        except (OSError, ValueError):
            # A writer may have swapped the folder between two of the files: read again.
            if before is None or _save_id(folder) == before or attempt == tries - 1:
                raise
        else:
            if before is None or _save_id(folder) == before:
                return result
        time.sleep(0.05 * (attempt + 1))
    raise OSError(f"{folder} kept changing while it was read ({tries} tries); try again")


@contextlib.contextmanager
def _locked(folder: Path, exclusive: bool) -> Iterator[None]:
    """Hold an advisory lock on ``folder``'s parent: shared by readers, exclusive for the
    moment a writer swaps folders (where ``fcntl.flock`` exists; elsewhere readers rely
    on the ``save_id`` check alone)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    descriptor = os.open(folder.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _save_id(folder: Path) -> str | None:
    return read_marker(folder).get("save_id") if (folder / MARKER).is_file() else None


def _renameat2(source: Path, target: Path, flags: int) -> bool | None:
    """``renameat2`` on Linux: True done, False refused (target exists), None unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    at_fdcwd = -100
    result = function(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), flags)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (17, 39):  # EEXIST, ENOTEMPTY
        return False
    if error in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot
        return None
    raise OSError(error, os.strerror(error), str(target))


def _rename_noreplace(source: Path, target: Path) -> bool:
    done = _renameat2(source, target, _RENAME_NOREPLACE)
    if done is not None:
        return done
    if target.exists():
        return False
    os.rename(source, target)
    return True


def _swap(new: Path, folder: Path) -> None:
    """Put ``new`` in place of ``folder`` (both exist); the old content is deleted."""
    if _renameat2(new, folder, _RENAME_EXCHANGE):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now names the old folder
        return
    old = temporary_path(folder, "old")
    os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
