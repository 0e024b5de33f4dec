"""``byol import``: weights released by other projects as an exported backbone folder.

The folder is the one :func:`byol.export.export_backbone` writes (``model.safetensors`` + ``config.json`` with
the preprocessing), so ``byol.load_backbone``, ``byol linear-eval`` and ``byol knn-eval`` read it, and image
backbones load with timm alone (``timm.create_model("local-dir:OUT", pretrained=True)``). Formats:

- ``byola``: the BYOL-A papers' ``.pth`` (AudioNTT2020 d=512/1024/2048, AudioNTT2022 d=3072), keys
  ``features.<i>.*`` and ``fc.<i>.*``. The papers' code has no fixed statistics for these weights: it computes the
  log-mel mean and std on each downstream training set, so they must be given (``mean``/``std``) or computed from
  an audio folder (``stats_from``).
- ``ijepa``: I-JEPA's ``.pth.tar`` (a dict with ``encoder``, ``target_encoder``, ``predictor``, ...; keys
  ``module.patch_embed.proj.*``, ``module.pos_embed`` without a class token, ``module.blocks.<i>.*``,
  ``module.norm.*``). Becomes a timm ViT without class token whose features are the mean over patch tokens of
  the final norm's output (the paper's linear-probe features); the target encoder by default, as in the paper.
- ``dino``: DINO's ``checkpoint.pth`` (``teacher``/``student`` with ``module.``/``backbone.`` prefixes and a
  ``head.*`` projection head, dropped) or its backbone-only release (timm key names). Becomes a timm ViT whose
  features are the class token after the final norm (DINO's k-NN and linear features); the teacher by default.
- ``timm``: ``timm:NAME`` with a local ``--weights`` file in timm's key names (``.safetensors``, ``.pth``); the
  classifier is dropped; the preprocessing is the model's ``pretrained_cfg`` (input size, mean, std).

ViTs are rebuilt from the shapes (embedding width, depth, patch size, input size, MLP width); the head count
is not in the shapes and comes from the standard widths (192: 3, 384: 6, 768: 12, 1024/1280/1408: 16) or
``num_heads``. Every load is strict: a key that is missing or left over, or a shape that differs, raises an error
that names the file. Files are read with ``torch.load(..., weights_only=True)`` (DINO's ``argparse.Namespace``
of arguments allowed), never running pickled code.
"""

from __future__ import annotations

import argparse
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Literal

import timm
import torch
from safetensors.torch import load_file
from torch import Tensor

from .core.checkpoint_io import blocked_globals
from .export import export_backbone
from .models import TimmBackbone
from .models.audio_ntt import from_paper_state_dict
from .models.state import strict_load
from .views import ImagePreprocess
from .views.audio_frontend import LogMelPreprocess

Format = Literal["byola", "ijepa", "dino", "timm"]
FORMATS: tuple[str, ...] = ("byola", "ijepa", "dino", "timm")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # I-JEPA's and DINO's normalisation
VIT_SIZES = {192: ("tiny", 3), 384: ("small", 6), 768: ("base", 12), 1024: ("large", 16), 1280: ("huge", 16),
             1408: ("giant", 16)}  # embedding width: (timm size name, heads)


def import_weights(
    source: str,
    out_dir: Path,
    format: Format | None = None,
    weights: Path | None = None,
    encoder: str | None = None,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
    stats_from: Path | None = None,
    size: int | None = None,
    num_heads: int | None = None,
) -> Path:
    """Turn released weights into an exported backbone folder (``model.safetensors`` + ``config.json``).

    Examples: ``byol import AudioNTT2020-BYOLA-64x96d2048.pth OUT --stats_from AUDIO_DIR``,
    ``byol import IN1K-vit.h.14-300e.pth.tar OUT``, ``byol import dino_vitbase16_pretrain.pth OUT``,
    ``byol import timm:resnet50 OUT --weights resnet50.safetensors``.

    Args:
        source: the released file, or ``timm:NAME`` (any ``timm.list_models()`` name, optionally with a tag).
        out_dir: folder to write.
        format: ``byola``, ``ijepa``, ``dino`` or ``timm``; by default told from ``source`` and the file's keys.
        weights: with ``timm:NAME``, the local weights file (timm's key names).
        encoder: which network of the checkpoint: ``target_encoder`` (default) or ``encoder`` for I-JEPA,
            ``teacher`` (default) or ``student`` for DINO.
        mean, std: BYOL-A: the log-mel statistics (numbers). Images: per-channel values (default: timm's
            ``pretrained_cfg``; ImageNet's for I-JEPA and DINO).
        stats_from: BYOL-A: an audio folder to compute the log-mel statistics on, instead of ``mean``/``std``.
        size: images: the input side (default: the model's input size).
        num_heads: ViTs of a non-standard width: their attention heads.

    Returns:
        ``out_dir``.
    """
    if source.startswith("timm:"):
        if format not in (None, "timm"):
            raise ValueError(f"{source}: a timm:NAME source is --format timm, not {format}")
        if weights is None:
            raise ValueError(f"{source} needs --weights FILE (.safetensors or .pth, timm's key names); "
                             "byol import downloads nothing")
        return import_timm(source.removeprefix("timm:"), weights, out_dir, size=size, mean=mean, std=std)
    if format == "timm":
        raise ValueError(f"--format timm takes the source timm:NAME and --weights FILE, got {source}")
    if weights is not None:
        raise ValueError(f"--weights is for timm:NAME sources; {source} is itself the weights file")
    path = Path(source)
    checkpoint = read_weights(path)
    format = format or infer_format(checkpoint, path)
    if stats_from is not None and format != "byola":
        raise ValueError(f"--stats_from computes log-mel statistics for BYOL-A weights; {path} is {format}")
    if format == "byola":
        return import_byola(path, out_dir, mean=mean, std=std, stats_from=stats_from, checkpoint=checkpoint)
    image = dict(size=size, mean=mean, std=std, num_heads=num_heads, checkpoint=checkpoint)
    if format == "ijepa":
        return import_ijepa(path, out_dir, encoder=encoder or "target_encoder", **image)
    if format == "dino":
        return import_dino(path, out_dir, encoder=encoder or "teacher", **image)
    raise ValueError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")


def import_command(
    source: str,
    out_dir: Path,
    format: Format | None = None,
    weights: Path | None = None,
    encoder: str | None = None,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
    stats_from: Path | None = None,
    size: int | None = None,
    num_heads: int | None = None,
) -> None:
    """Turn released weights (BYOL-A, I-JEPA, DINO, timm) into an exported backbone folder.

    ``byol import FILE OUT_DIR`` tells the format from the file's keys; ``byol import timm:NAME OUT_DIR
    --weights FILE`` takes timm weights. BYOL-A needs log-mel statistics: ``--mean M --std S`` or
    ``--stats_from AUDIO_DIR``. Image preprocessing defaults to the model's (``--size``, ``--mean [..]``,
    ``--std [..]`` override it).

    Args:
        source: the released file, or ``timm:NAME``.
        out_dir: folder to write (model.safetensors + config.json).
        format: byola, ijepa, dino or timm (default: told from the file's keys).
        weights: with timm:NAME, the local weights file (.safetensors or .pth).
        encoder: I-JEPA: target_encoder (default) or encoder; DINO: teacher (default) or student.
        mean: BYOL-A: log-mel mean; images: per-channel mean.
        std: BYOL-A: log-mel std; images: per-channel std.
        stats_from: BYOL-A: audio folder to compute the log-mel mean and std on.
        size: images: input side (default: the model's).
        num_heads: ViTs of a non-standard width: attention heads.
    """
    out = import_weights(source, out_dir, format, weights, encoder, mean, std, stats_from, size, num_heads)
    print(f"backbone imported to {out}/")


def read_weights(path: Path) -> dict[str, Any]:
    """The dict stored in a weights file: ``.safetensors``, or a torch file read with ``weights_only=True``."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except Exception as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # DINO saves its arguments
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:
        blocked = blocked_globals(path)
        if blocked:
            raise ValueError(f"refusing to load {path}: unpickling it would call {', '.join(blocked)}, which "
                             "released weights do not need") from err
        raise ValueError(f"{path} is not a readable torch file (torch.load raised {type(err).__name__}): expected "
                         "released weights (.pth, .pth.tar, .safetensors)") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of weights, got a {type(obj).__name__}")
    return obj


def infer_format(checkpoint: dict[str, Any], path: Path) -> Format:
    """The format of a released checkpoint, told from its top-level keys; an error lists the alternatives."""
    if "target_encoder" in checkpoint or "encoder" in checkpoint:
        return "ijepa"
    if "teacher" in checkpoint or "student" in checkpoint:
        return "dino"
    keys = [str(k) for k in checkpoint]
    if any(re.search(r"(?:^|\.)(features|fc)\.\d+\.", k) for k in keys):
        return "byola"
    if any(re.fullmatch(r"(module\.)?(backbone\.)?cls_token", k) for k in keys):
        return "dino"  # DINO's backbone-only release
    raise ValueError(
        f"{path}: cannot tell the format from its keys ({_some(keys)}): expected BYOL-A (features.<i>.*, fc.<i>.*), "
        "I-JEPA (encoder/target_encoder), DINO (teacher/student, or a ViT with cls_token); give --format "
        f"{'|'.join(FORMATS[:3])}, or timm:NAME as the source with --weights FILE"
    )


def import_byola(
    path: Path,
    out_dir: Path,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
    stats_from: Path | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Path:
    """A BYOL-A ``.pth`` as an AudioNTT backbone: waveforms ``(B, L)`` at 16 kHz to log-mels ``(B, 1, 64, T)``
    normalised with ``mean``/``std`` (or those of the audio under ``stats_from``), to embeddings ``(B, d)``."""
    if stats_from is not None and (mean is not None or std is not None):
        raise ValueError("give either --stats_from or --mean/--std, not both")
    if stats_from is None and (mean is None or std is None):
        raise ValueError(f"{path}: BYOL-A weights need the log-mel statistics of the pre-normalisation: give --mean M "
                         "--std S or --stats_from AUDIO_DIR (the papers compute them on the downstream training set)")
    if isinstance(mean, list) or isinstance(std, list):
        raise ValueError(f"{path}: BYOL-A's --mean and --std are single numbers (log-mel statistics), "
                         f"got {mean}, {std}")
    try:
        backbone = from_paper_state_dict(read_weights(path) if checkpoint is None else checkpoint)
    except (ValueError, RuntimeError) as err:
        raise type(err)(f"{path}: {err}") from err
    if stats_from is not None:
        from .eval.byola_weights import folder_statistics

        mean, std = folder_statistics(stats_from)
    preprocessing = LogMelPreprocess(mean=mean, std=std).export_config()
    return export_backbone(backbone.eval(), out_dir, preprocessing, method="BYOLA",
                           imported_from={"format": "byola", "file": str(path)})


def import_timm(
    name: str,
    weights: Path,
    out_dir: Path,
    size: int | None = None,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
) -> Path:
    """A timm model with local weights (timm's key names; a classifier in the file is dropped) as a backbone:
    images ``(B, C, H, W)`` to pooled features ``(B, D)``."""
    backbone = TimmBackbone(name)
    state = _strip(_unwrap(read_weights(Path(weights))), "module.")
    classifier = backbone.model.pretrained_cfg.get("classifier") or ()
    for head in [classifier] if isinstance(classifier, str) else classifier:
        state = {k: v for k, v in state.items() if k not in (f"{head}.weight", f"{head}.bias")}
    strict_load(backbone.model, state, str(weights))
    data = timm.data.resolve_data_config({}, model=backbone.model)
    return _export_image(backbone.eval(), out_dir, data["input_size"][-1], data["mean"], data["std"],
                         size, mean, std, method="timm", imported_from={"format": "timm", "file": str(weights)})


def import_ijepa(
    path: Path,
    out_dir: Path,
    encoder: str = "target_encoder",
    size: int | None = None,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
    num_heads: int | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Path:
    """An I-JEPA checkpoint's ``encoder`` as a timm ViT without class token: images ``(B, 3, S, S)`` to the mean
    over the ``(S / patch)^2`` patch tokens of the final norm's output, ``(B, D)``."""
    checkpoint = read_weights(path) if checkpoint is None else checkpoint
    state = _strip(_network(checkpoint, encoder, ("target_encoder", "encoder"), path), "module.")
    backbone = vit_from_state(state, str(path), num_heads)
    return _export_image(backbone, out_dir, backbone.model_kwargs["img_size"], IMAGENET_MEAN, IMAGENET_STD,
                         size, mean, std, method="I-JEPA",
                         imported_from={"format": "ijepa", "file": str(path), "encoder": encoder})


def import_dino(
    path: Path,
    out_dir: Path,
    encoder: str = "teacher",
    size: int | None = None,
    mean: float | list[float] | None = None,
    std: float | list[float] | None = None,
    num_heads: int | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Path:
    """A DINO ViT (``teacher``/``student`` of a full checkpoint, or a backbone-only release) as a timm ViT:
    images ``(B, 3, S, S)`` to the class token after the final norm, ``(B, D)``."""
    checkpoint = read_weights(path) if checkpoint is None else checkpoint
    if "teacher" in checkpoint or "student" in checkpoint:
        checkpoint = _network(checkpoint, encoder, ("teacher", "student"), path)
        source = f"{path} ({encoder})"
    else:
        source = str(path)
    state = {k: v for k, v in _strip(_strip(checkpoint, "module."), "backbone.").items() if not k.startswith("head.")}
    backbone = vit_from_state(state, source, num_heads)
    return _export_image(backbone, out_dir, backbone.model_kwargs["img_size"], IMAGENET_MEAN, IMAGENET_STD,
                         size, mean, std, method="DINO",
                         imported_from={"format": "dino", "file": str(path), "encoder": encoder})


def vit_from_state(state: dict[str, Tensor], source: str, num_heads: int | None = None) -> TimmBackbone:
    """A timm ViT (:class:`TimmBackbone`, eval mode) with the shapes of ``state`` (timm's key names), loaded strictly.

    With a ``cls_token`` the features are the class token (``global_pool="token"``); without one, the mean of the
    patch tokens, the final norm applied to every token before the mean (``global_pool="avg"``, no ``fc_norm``).
    """
    needed = ("patch_embed.proj.weight", "pos_embed", "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight",
              "norm.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise ValueError(f"{source}: not a ViT: no {', '.join(missing)} (keys: {_some(list(state))})")
    embed_dim, in_chans, patch, _ = state["patch_embed.proj.weight"].shape
    class_token = "cls_token" in state
    tokens = state["pos_embed"].shape[1] - int(class_token)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ValueError(f"{source}: pos_embed has {tokens} patch positions, not a square grid")
    size_name, heads = VIT_SIZES.get(embed_dim, ("base", None))
    heads = num_heads or heads
    if heads is None:
        raise ValueError(f"{source}: a ViT of width {embed_dim} has no standard head count; give --num_heads")
    kwargs: dict[str, Any] = dict(
        img_size=grid * patch, patch_size=patch, embed_dim=embed_dim,
        depth=1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks.")), num_heads=heads,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        qkv_bias="blocks.0.attn.qkv.bias" in state, class_token=class_token,
        global_pool="token" if class_token else "avg",
    )
    if not class_token:
        kwargs["fc_norm"] = False  # the final norm on every token, then the mean
    names = (f"vit_{size_name}_patch{patch}_{grid * patch}", f"vit_{size_name}_patch{patch}_224",
             f"vit_{size_name}_patch16_224", "vit_base_patch16_224")  # every shape is in kwargs: only a label
    backbone = TimmBackbone(next(n for n in names if timm.is_model(n)), in_chans=in_chans, model_kwargs=kwargs)
    strict_load(backbone.model, state, source)
    return backbone.eval()


def _export_image(
    backbone: TimmBackbone, out_dir: Path, model_size: int, model_mean: tuple[float, ...] | list[float],
    model_std: tuple[float, ...] | list[float], size: int | None, mean: float | list[float] | None,
    std: float | list[float] | None, **metadata: Any,
) -> Path:
    """Export ``backbone`` with an :class:`ImagePreprocess` of the model's values, or the user's where given."""
    channels = backbone.in_chans

    def per_channel(value: float | list[float] | None, default: tuple[float, ...] | list[float], what: str):
        value = default if value is None else [value] * channels if isinstance(value, (int, float)) else value
        if len(value) != channels:
            raise ValueError(f"--{what} needs {channels} values (one per input channel), got {list(value)}")
        return tuple(float(v) for v in value)

    preprocess = ImagePreprocess(size or model_size, per_channel(mean, model_mean, "mean"),
                                 per_channel(std, model_std, "std"))
    return export_backbone(backbone, out_dir, preprocess.export_config(), **metadata)


def _network(checkpoint: dict[str, Any], name: str, choices: tuple[str, ...], path: Path) -> dict[str, Tensor]:
    """``checkpoint[name]``, one of ``choices``, or an error that names the file and what it holds."""
    if name not in choices:
        raise ValueError(f"--encoder {name}: expected one of {', '.join(choices)}")
    if not isinstance(checkpoint.get(name), dict):
        raise ValueError(f"{path}: no {name!r} state dict (top-level keys: {_some([str(k) for k in checkpoint])})")
    return checkpoint[name]


def _unwrap(checkpoint: dict[str, Any]) -> dict[str, Tensor]:
    """A state dict saved bare or under ``state_dict`` / ``model`` (training scripts' habits)."""
    for key in ("state_dict", "model"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``state`` with ``prefix`` removed from the keys that start with it."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def _some(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} keys)" if len(keys) > n else "")
