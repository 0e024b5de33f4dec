"""Files written atomically, with the usual permissions, and a clear message when the disk is full."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """Writing a file ran out of space (or quota); the file it would have replaced is untouched."""


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file: ``0o666`` less the process umask (read back and restored)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through a temporary file in its folder, then rename it over ``path``.

    ``write`` gets the open binary file. The data are flushed and fsync'ed before
    the rename (``os.replace`` is atomic), so a crash or a full disk never leaves
    a truncated ``path``: the previous file stays as it was and the temporary
    file is removed. The new file gets the permissions of a plain ``open()``
    (``0o666`` less the umask), not ``mkstemp``'s owner-only ``0o600``.

    Raises:
        DiskFullError: the device ran out of space or quota; the message names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as err:
        if _caused_by_full_disk(err):
            kept = "the previous file is intact" if path.exists() else "nothing was written"
            raise DiskFullError(
                f"no space left on device while writing {path} ({kept}); free space on that disk "
                "or write elsewhere (for a run: --trainer.default_root_dir DIR)"
            ) from err
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _caused_by_full_disk(err: BaseException) -> bool:
    """Whether ``err`` or an exception it was raised from or during is ENOSPC/EDQUOT.

    ``torch.save`` reports a failed write as a ``RuntimeError`` from its zip
    writer; the ``OSError`` of the file underneath is in its chain.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return True
        todo += [e.__cause__, e.__context__]
    return False
