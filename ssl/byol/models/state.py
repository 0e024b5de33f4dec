"""Strict state-dict loading with an error that says what does not match."""

from __future__ import annotations

import torch
from torch import nn


def strict_load(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error that lists what does not match."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        lines = [f"weights in {source} do not match {type(module).__name__}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        for k in shapes[:20]:
            lines.append(f"  shape of {k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}")
        raise RuntimeError("\n".join(lines))
    module.load_state_dict(state, strict=True)
