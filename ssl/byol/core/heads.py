"""BYOL projection and prediction heads (Grill et al. 2020, Sec. 3.3)."""

from __future__ import annotations

from torch import nn


class BYOLMLP(nn.Sequential):
    """``Linear(in, hidden) - BatchNorm1d - ReLU - Linear(hidden, out, bias=False)``.

    Input ``(B, in_dim)``, output ``(B, out_dim)``. The paper's sizes are
    hidden 4096 and out 256.

    The output layer carries no bias term.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim, bias=False),
        )
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim


class BYOLProjectionHead(BYOLMLP):
    """Projector ``g``: backbone feature ``(B, d)`` to projection ``(B, 256)``."""


class BYOLPredictionHead(BYOLMLP):
    """Predictor ``q``: projection ``(B, 256)`` to prediction ``(B, 256)``; online only."""

    def __init__(self, dim: int = 256, hidden_dim: int = 4096) -> None:
        super().__init__(dim, hidden_dim, dim)
