"""Checkpoint files that are written atomically and read without unpickling code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a truncated file and never runs pickled code.

    - **Writes** go to a temporary file in the target folder, are flushed and
      fsync'ed, then renamed over the target (``os.replace`` is atomic): a crash
      mid-write leaves the previous ``last.ckpt`` intact.
    - **Reads** use ``torch.load(..., weights_only=True)``: tensors and plain
      containers only.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
