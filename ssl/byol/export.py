"""Backbone export (safetensors + JSON) and loading.

An exported folder holds ``model.safetensors`` (the backbone's weights) and ``config.json``:

- ``backbone``: the arguments that rebuild the backbone (``{"class": "TimmBackbone", ...}``); folders written
  before timm-native export kept them under ``architecture``, which :func:`load_backbone` still reads;
- ``preprocessing``: what inputs it expects; ``num_features``, ``sha256`` of the weights, and metadata
  (``method``, ``checkpoint``, ...);
- for a :class:`~byol.models.TimmBackbone`, also the fields of timm's own ``config.json`` (``architecture``: the
  timm model name, ``num_classes``: 0, ``model_args``, ``pretrained_cfg`` with the preprocessing), so that
  ``timm.create_model("local-dir:FOLDER", pretrained=True)`` loads the folder with timm alone and returns the
  same pooled features. The CIFAR stem is the exception: timm's ResNet cannot build it (see
  :func:`timm_config`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from . import data, models, views
from .core.checkpoint_io import read_checkpoint
from .core.files import atomic_write
from .models.state import strict_load

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_backbone(
    backbone: nn.Module,
    out_dir: str | Path,
    preprocessing: dict[str, Any],
    **metadata: Any,
) -> Path:
    """Write ``model.safetensors`` (backbone weights only) and ``config.json`` into ``out_dir``.

    For a :class:`~byol.models.TimmBackbone` the folder is also a timm ``local-dir:`` folder (:func:`timm_config`).

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
    atomic_write(out / WEIGHTS_NAME, lambda f: f.write(save(state, metadata={"format": "pt"})))
    config = {
        **(timm_config(backbone, preprocessing) if isinstance(backbone, models.TimmBackbone) else {}),
        "backbone": backbone.export_config(),
        "preprocessing": preprocessing,
        "num_features": backbone.num_features,
        "sha256": _sha256(out / WEIGHTS_NAME),
        **metadata,
    }
    atomic_write(out / CONFIG_NAME, lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))
    return out


def timm_config(backbone: models.TimmBackbone, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """The fields timm reads from a ``local-dir:`` folder's ``config.json`` (as timm's ``save_for_hf`` writes them).

    ``timm.create_model("local-dir:DIR", pretrained=True)`` builds ``architecture`` with ``model_args`` as
    keyword arguments (``num_classes=0``, ``in_chans`` and the backbone's ``model_kwargs``), then loads
    ``DIR/model.safetensors`` strictly: its forward gives the same pooled features ``(B, num_features)`` as
    :func:`load_backbone`. ``pretrained_cfg`` carries the input size, mean and std of an
    :class:`~byol.views.ImagePreprocess` (``timm.data.resolve_data_config`` reads them; timm's eval transform
    also resizes larger images down, which ``ImagePreprocess`` does not).

    A ResNet with ``cifar_stem=True`` has a 3x3 stride-1 ``conv1`` and no max-pool, which no argument of timm's
    ResNet gives: timm builds the body from these fields, but ``pretrained=True`` fails on ``conv1.weight``'s
    shape. ``timm_cifar_stem`` then says how to load it with timm and torch (replace the two modules, then
    ``load_state_dict``).
    """
    base = backbone.model.pretrained_cfg
    modules = dict(backbone.model.named_modules())
    pretrained_cfg: dict[str, Any] = {
        "num_classes": 0,
        "fixed_input_size": bool(base.get("fixed_input_size", False)),
        "classifier": base.get("classifier"),
        "first_conv": base.get("first_conv") if base.get("first_conv") in modules else None,  # a stem may differ
    }
    pretrained_cfg = {k: v for k, v in pretrained_cfg.items() if v is not None}
    if preprocessing.get("class") == "ImagePreprocess":
        size = preprocessing["size"]
        pretrained_cfg.update(input_size=[backbone.in_chans, size, size], interpolation="bilinear", crop_pct=1.0,
                              crop_mode="center", mean=list(preprocessing["mean"]), std=list(preprocessing["std"]))
    config = {
        "architecture": base.get("architecture", backbone.name),
        "num_classes": 0,
        "num_features": backbone.num_features,
        "model_args": {"num_classes": 0, "in_chans": backbone.in_chans, **backbone.model_kwargs},
        "pretrained_cfg": pretrained_cfg,
    }
    if backbone.cifar_stem:
        conv = backbone.model.conv1
        config["timm_cifar_stem"] = (
            f"timm has no CIFAR stem: model = timm.create_model('local-dir:DIR'); model.conv1 = torch.nn.Conv2d("
            f"{conv.in_channels}, {conv.out_channels}, 3, stride=1, padding=1, bias=False); "
            "model.maxpool = torch.nn.Identity(); "
            "model.load_state_dict(safetensors.torch.load_file('DIR/model.safetensors'))"
        )
    return config


def backbone_config(config: dict[str, Any], source: str = "config.json") -> dict[str, Any]:
    """The backbone's rebuild arguments: ``config["backbone"]``, or ``config["architecture"]`` in older folders."""
    architecture = config.get("backbone", config.get("architecture"))
    if not isinstance(architecture, dict):
        raise ValueError(f"{source}: no 'backbone' entry (the arguments that rebuild the backbone)")
    return architecture


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
    backbone = build_backbone(backbone_config(config, str(path)), source=str(path))
    backbone.load_export_state_dict(load_file(weights))
    return backbone.to(device).eval()


def load_preprocess(path: str | Path):
    """The input transform an exported backbone expects.

    :class:`byol.views.ImagePreprocess` (uint8 images to normalised crops),
    :class:`byol.views.LogMelPreprocess` (waveforms to normalised log-mels) or
    :class:`byol.data.TabularPreprocessing` (table rows to token inputs, ``.transform(frame)``).
    """
    return build_preprocess(read_config(path)["preprocessing"], str(path))


def build_preprocess(config: dict[str, Any], source: str = "config"):
    """A preprocessing object from its ``export_config()`` dict; only classes of :mod:`byol.views` or :mod:`byol.data`."""
    namespace = views if hasattr(views, str(config.get("class"))) else data
    return _build(config, namespace, source, base=object)


def build_backbone(architecture: dict[str, Any], source: str = "config") -> nn.Module:
    """A freshly initialised backbone from its ``export_config()`` dict; only classes of :mod:`byol.models`."""
    return _build(architecture, models, source)


def _build(config: dict[str, Any], namespace, source: str, base: type = nn.Module):
    """Instantiate ``config["class"]`` from ``namespace`` (a byol subpackage only) with the other keys."""
    args = dict(config)
    cls_name = args.pop("class", None)
    args.pop("num_features", None)
    cls = getattr(namespace, str(cls_name), None)
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise ValueError(f"{source}: unknown class {cls_name!r} (expected one of {namespace.__name__})")
    return cls(**args)


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    """``byol export``: the backbone of a training checkpoint to ``out_dir`` (safetensors + config.json)."""
    if Path(ckpt_path).suffix != ".ckpt":
        raise ValueError(f"{ckpt_path}: expected a training checkpoint (.ckpt)")
    backbone, _, config = load_pretrained(ckpt_path)
    ckpt = read_checkpoint(ckpt_path)
    return export_backbone(
        backbone, out_dir, config["preprocessing"],
        method=config["method"], checkpoint=str(ckpt_path), epoch=ckpt.get("epoch"), global_step=ckpt.get("global_step"),
    )


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any, dict[str, Any]]:
    """``(backbone, preprocess, config)`` from an exported folder or straight from a training checkpoint.

    The backbone is in eval mode on ``device``; ``preprocess`` maps raw
    batches (e.g. uint8 images) to the backbone's input.
    """
    path = Path(path)
    if path.suffix == ".ckpt":
        ckpt = read_checkpoint(path)
        meta = ckpt.get("byol")
        if meta is None:
            raise ValueError(f"{path} is not a checkpoint written by a byol method (no 'byol' entry)")
        backbone = build_backbone(meta["backbone"], source=str(path))
        prefix = meta["backbone_prefix"]
        strict_load(backbone, {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}, str(path))
        config = {"backbone": meta["backbone"], "preprocessing": meta["preprocessing"], "method": meta["method"]}
        backbone = backbone.to(device).eval()
    else:
        backbone, config = load_backbone(path, device), read_config(path)
    preprocess = build_preprocess(config["preprocessing"], str(path))
    if isinstance(preprocess, nn.Module):
        preprocess = preprocess.to(device)
    return backbone, preprocess, config
