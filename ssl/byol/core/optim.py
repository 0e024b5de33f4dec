"""Parameter groups and optimizer construction shared by every method."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

OptimizerFactory = Callable[[Iterable], torch.optim.Optimizer]
"""A callable that takes parameter groups and returns an optimizer (LightningCLI's
``OptimizerCallable``), e.g. ``functools.partial(timm.optim.Lars, lr=0.2, weight_decay=1.5e-6)``."""

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def no_decay_names(module: nn.Module) -> set[str]:
    """Names of parameters that get no weight decay: biases and all normalisation weights.

    Besides ``torch.nn`` norm layers, any 1-D parameter (timm's own norm layers,
    layer-scale gammas, tokens of shape ``(d,)``) is treated the same way.
    """
    names: set[str] = set()
    for mod_name, mod in module.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias" or isinstance(mod, _NORM_TYPES) or p.ndim <= 1:
                names.add(full)
    return names


def param_groups(module: nn.Module, exclude: tuple[str, ...] = (), **extra) -> list[dict]:
    """Split trainable parameters of ``module`` into a decayed and a non-decayed group.

    Parameters whose names start with a prefix in ``exclude`` are left out.

    The non-decayed group has ``weight_decay=0``, which also excludes it from the
    LARS trust-ratio adaptation (timm's ``Lars`` adapts only where
    ``weight_decay != 0`` unless ``always_adapt``), as in the BYOL paper. The
    decayed group takes the optimizer's default weight decay. ``extra`` keys are
    added to both groups.
    """
    skip = no_decay_names(module)
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad and not name.startswith(exclude):
            (no_decay if name in skip else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, **extra})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, **extra})
    return groups
