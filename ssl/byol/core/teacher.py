"""EMA teachers: optional parts a method declares, each following an online module with its own schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .ema import ema_update, make_target
from .schedules import TauSchedule


class EMATeacher(nn.Module):
    """A frozen copy of an online module that moves towards it by EMA once per optimizer step.

    A method that has a momentum network declares one (``self.target =
    EMATeacher(self.online, CosineTau(0.996))``); the base
    :class:`~byol.core.Method` finds every teacher among its submodules and calls
    :meth:`update` after each optimizer step. Methods without one (SimSiam,
    Barlow Twins, VICReg) carry no copy at all. Its weights are ``module.*`` in
    checkpoints; the online module is referenced, not owned.

    Args:
        online: the module to copy and follow.
        tau: the EMA decay as a function of ``(step, total_steps)``.
    """

    def __init__(self, online: nn.Module, tau: TauSchedule) -> None:
        super().__init__()
        self.module = make_target(online)
        self.tau = tau
        self._online = (online,)  # a tuple: not registered, so the online weights are not saved twice

    @property
    def online(self) -> nn.Module:
        return self._online[0]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, step: int, total_steps: int) -> float:
        """``t <- tau t + (1 - tau) o`` with ``tau = self.tau(step, total_steps)`` (fused; buffers copied). Returns tau."""
        tau = self.tau(step, total_steps)
        ema_update(self.module, self.online, tau)
        return tau
