"""Projection and prediction heads of the family, and the backbone + projector pair that teachers copy."""

from __future__ import annotations

import torch
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


class MLP(nn.Sequential):
    """``[Linear - BatchNorm1d - ReLU] x (layers - 1) - Linear``, and a ``BatchNorm1d(affine=False)`` on the output
    when ``output_norm``: the projectors and predictors of the family.

    Input ``(B, in_dim)``, output ``(B, out_dim)``. SimSiam's and MoCo v3's
    projectors end in the output norm; Barlow Twins' and VICReg's projectors
    are three layers without it. Linear layers followed by a BatchNorm carry no
    bias (the norm removes it).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, output_norm: bool = False) -> None:
        if layers < 1:
            raise ValueError(f"an MLP needs at least one layer, got {layers}")
        modules: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (layers - 1)
        for a, b in zip(dims[:-1], dims[1:]):
            modules += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        modules.append(nn.Linear(dims[-1], out_dim, bias=not output_norm))
        if output_norm:
            modules.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*modules)
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim


class Encoder(nn.Module):
    """Backbone followed by a projector; the part of the online network the target copies."""

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features (B, D), projections (B, P))``."""
        features = self.backbone(x)
        return features, self.projector(features)
