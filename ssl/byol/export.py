"""Backbone export (safetensors + JSON) and loading."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import models

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: no truncated file is ever left."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_backbone(
    backbone: nn.Module,
    out_dir: str | Path,
    preprocessing: dict[str, Any],
    **metadata: Any,
) -> Path:
    """Write ``model.safetensors`` (backbone weights only) and ``config.json`` into ``out_dir``.

    Args:
        backbone: a backbone of :mod:`byol.models` (it has ``export_config()``
            and ``export_state_dict()``).
        preprocessing: what inputs the backbone expects (for images: ``size``, ``mean``, ``std``).
        metadata: anything else worth keeping (method, run, metrics).

    Returns:
        ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.export_state_dict().items()}
    _atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    config = {
        "architecture": backbone.export_config(),
        "preprocessing": preprocessing,
        "num_features": backbone.num_features,
        "sha256": _sha256(out / WEIGHTS_NAME),
        **metadata,
    }
    _atomic_write(out / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    return out


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of an exported backbone folder."""
    path = Path(path)
    config_path = path / CONFIG_NAME if path.is_dir() else path.with_name(CONFIG_NAME)
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: an exported backbone folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    return json.loads(config_path.read_text())


def load_backbone(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load an exported backbone folder (or its ``model.safetensors``) as a ready ``nn.Module`` in eval mode.

    Loading is strict: a key that is missing or unexpected raises a
    ``RuntimeError`` that lists them. The weights' sha256 is checked against
    ``config.json``.
    """
    path = Path(path)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    config = read_config(path)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found")
    if "sha256" in config and _sha256(weights) != config["sha256"]:
        raise ValueError(f"{weights} does not match the sha256 in {CONFIG_NAME}: the file is corrupt or was replaced")
    arch = dict(config["architecture"])
    cls_name = arch.pop("class")
    arch.pop("num_features", None)
    cls = getattr(models, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ValueError(f"{CONFIG_NAME}: unknown backbone class {cls_name!r} (expected one of byol.models)")
    backbone = cls(**arch)
    backbone.load_export_state_dict(load_file(weights))
    return backbone.to(device).eval()
