"""Target-network helpers: copy, freeze and the EMA update, as free functions.

Buffer policy (BN running statistics and any other registered buffer): buffers
are **copied** from the online network at every update, never averaged. The
running mean/variance of the online network are estimates of the statistics of
the online activations; an average of past estimates is not a better estimate of
anything, and ``num_batches_tracked`` is an integer that cannot be averaged. The
target still runs its forward pass in training mode (batch statistics, as in the
BYOL paper), so copying only fixes what the target would use in eval mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_target(online: nn.Module) -> nn.Module:
    """Return a frozen deep copy of ``online``: same weights, ``requires_grad=False``."""
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Move ``target`` towards ``online`` in place: ``t <- tau * t + (1 - tau) * o``.

    One fused multi-tensor ``lerp`` over all parameters (no Python loop over
    tensors), then buffers are copied (see the module docstring).
    ``target`` and ``online`` must have the same architecture.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    t_params = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError(f"target has {len(t_params)} parameters, online has {len(o_params)}")
    if tau < 1.0:
        torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
    t_bufs = list(target.buffers())
    if t_bufs:
        torch._foreach_copy_(t_bufs, [b.detach() for b in online.buffers()])
