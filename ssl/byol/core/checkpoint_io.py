"""Checkpoint files that are written atomically and read without unpickling code."""

from __future__ import annotations

import pickletools
import signal
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import _weights_only_unpickler

from .files import atomic_write


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a truncated file and never runs pickled code.

    - **Writes** go through :func:`byol.core.files.atomic_write`: a crash or a
      full disk mid-write leaves the previous ``last.ckpt`` intact, and a full
      disk is reported as such, with the path.
    - **Reads** go through :func:`read_checkpoint`: tensors and plain containers only.
    - **SIGTERM and SIGINT** that arrive during a write wait until it is done (:func:`signals_deferred`): the
      interrupted run stops after the checkpoint it was writing, never inside ``torch.save``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with signals_deferred():
            atomic_write(path, lambda f: torch.save(checkpoint, f))


@contextmanager
def signals_deferred(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Hold back ``signums`` while the block runs, then deliver them to the handlers that were installed.

    A Python signal handler runs between any two bytecodes, so one that raises (Lightning's, ours in
    :mod:`byol.core.signals`) can break out of ``torch.save`` half-way and leave its zip writer failing. Here the
    handlers are replaced by a recorder for the block and the recorded signals are raised again after it. Only the
    main thread can set handlers; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.signal(signum, lambda received, frame: pending.append(received)) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path, map_location or "cpu")


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a training checkpoint with ``torch.load(..., weights_only=True)``: tensors and plain containers, never code.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: naming ``path``, one of: unpickling it would run code (the
            message names the blocked globals, found by reading the pickle's
            opcodes without executing them); it is not a readable checkpoint
            (truncated, corrupt, or not a checkpoint at all).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        blocked = blocked_globals(path)
        if blocked:
            raise ValueError(
                f"refusing to load {path}: unpickling it would call {', '.join(blocked)}, which can run arbitrary "
                "code and which no checkpoint of tensors needs (the weights-only loader blocks it)"
            ) from err
        raise ValueError(
            f"{path} is not a readable checkpoint: it is truncated, corrupt, or not a checkpoint at all "
            f"(torch.load raised {type(err).__name__}); give a .ckpt written by byol fit"
        ) from err
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a training checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    return ckpt


def blocked_globals(path: str | Path) -> list[str]:
    """The globals (``module.name``) that unpickling ``path`` would import and torch's weights-only loader blocks.

    ``path`` is a plain pickle or torch's zip format (its ``*/data.pkl``). The
    pickle is scanned with :mod:`pickletools`, never executed. An empty list:
    nothing blocked, or not a pickle at all.
    """
    try:
        data = _pickle_bytes(Path(path))
        imported = _imported_globals(data)
    except Exception:  # not a pickle (random bytes, truncated): nothing that would run
        return []
    allowed = set(_weights_only_unpickler._get_allowed_globals()) | set(_weights_only_unpickler._get_user_allowed_globals())
    return sorted({g for g in imported if g not in allowed})


def _pickle_bytes(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            return archive.read(name)
    return path.read_bytes()


def _imported_globals(data: bytes) -> list[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL / INST opcode of a pickle, without running it.

    STACK_GLOBAL takes its module and name from the two strings pushed before
    it, directly or through the memo. Raises on bytes that are not a whole pickle.
    """
    found: list[str] = []
    strings: list[str] = []  # strings pushed so far, in order
    memo: dict[int, str | None] = {}
    top: str | None = None  # the string on top of the stack, if the top is a string
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            found.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            found.append(".".join(strings[-2:]))
        if op.name == "MEMOIZE":
            memo[len(memo)] = top
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = top
        else:
            top = memo.get(arg) if op.name in ("GET", "BINGET", "LONG_BINGET") else arg if isinstance(arg, str) and op.name != "GLOBAL" else None
            if top is not None:
                strings.append(top)
    return found
