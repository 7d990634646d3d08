"""Files written whole: atomic writes with the umask's modes, the temporary files of
killed writers cleaned up, and a folder lock that a dead process never holds.

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
