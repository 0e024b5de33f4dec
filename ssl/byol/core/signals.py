"""SIGTERM and SIGINT end a command with exit code ``128 + signal`` and one line that says so.

Left alone, Lightning turns a SIGTERM during ``trainer.fit`` into a graceful stop that exits with code 0 (or lets
a script go on as if training had finished), and a SIGINT into exit code 1. Inside :func:`exit_on_interrupt`
both signals raise :class:`Interrupted` at once instead; Lightning runs its ``on_exception`` hooks and tears
down as for any error (its own SIGTERM handler still runs first: it composes with ours), and the command ends
with ``byol: interrupted by SIGTERM (last checkpoint: PATH)`` on stderr and exit code 143 (130 for SIGINT).
The checkpoint is the newest file written by the trainer's checkpoint callbacks, noted by
:class:`NoteCheckpointOnInterrupt` (:class:`byol.cli.ByolCLI` adds it to every trainer); without one the
line has no parenthesis. Checkpoints are written atomically (:mod:`byol.core.files`), so an interrupt
during a save leaves the previous file intact.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import lightning as L

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A SIGTERM or SIGINT received inside :func:`exit_on_interrupt`.

    A ``BaseException`` (like ``KeyboardInterrupt``), so ``except Exception`` blocks let it through, but not a
    ``KeyboardInterrupt``, which Lightning would turn into ``sys.exit(1)``.

    Attributes:
        signum: the signal number.
        checkpoint: the trainer's newest checkpoint file, when one was running and had written one.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.checkpoint: Path | None = None


def last_checkpoint(trainer: L.Trainer) -> Path | None:
    """The newest existing file among the ``last`` and ``best`` checkpoints of ``trainer``'s checkpoint callbacks."""
    paths = [
        Path(p)
        for callback in trainer.checkpoint_callbacks
        for p in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", ""))
        if p
    ]
    existing = [p for p in paths if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


class NoteCheckpointOnInterrupt(L.Callback):
    """Notes on an :class:`Interrupted` that stops the trainer its newest checkpoint, for the exit line."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, Interrupted) and exception.checkpoint is None:
            exception.checkpoint = last_checkpoint(trainer)


def interrupted_line(err: Interrupted, prog: str = "byol") -> str:
    """``byol: interrupted by SIGTERM (last checkpoint: PATH)``, without the parenthesis when no checkpoint is known."""
    where = f" (last checkpoint: {err.checkpoint})" if err.checkpoint is not None else ""
    return f"{prog}: interrupted by {signal.Signals(err.signum).name}{where}"


@contextmanager
def exit_on_interrupt(prog: str = "byol") -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted`; leaving on one prints a line and exits.

    The line goes to stderr (see :func:`interrupted_line`); the exit is ``SystemExit(128 + signum)``: 143 for
    SIGTERM, 130 for SIGINT. The previous handlers are restored on the way out. Processes forked inside the
    block (DataLoader workers) inherit the handlers but keep Python's defaults: SIGINT raises
    ``KeyboardInterrupt`` there and SIGTERM terminates them.

    Args:
        prog: the name that starts the line.
    """
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked child: behave as if no handler were installed
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    except Interrupted as err:
        sys.stdout.flush()
        sys.stderr.flush()
        print(interrupted_line(err, prog), file=sys.stderr)
        raise SystemExit(128 + err.signum) from None
    finally:
        for signum, old in previous.items():
            if old is not None:  # None: a handler not installed from Python, which cannot be put back
                signal.signal(signum, old)
