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


class WeightNormLinear(nn.Module):
    """A bias-free linear layer whose rows are unit vectors times a gain (weight normalisation, Salimans & Kingma
    2016): ``y = x @ (g * v / ||v||)^T``, each row of ``v`` normalised. ``fixed_norm=True`` fixes ``g = 1`` (no
    gain parameter): DINO's ``norm_last_layer``, which keeps the output scale from drifting.

    Input ``(..., in_dim)``, output ``(..., out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, fixed_norm: bool = True) -> None:
        super().__init__()
        self.weight_v = nn.Parameter(nn.Linear(in_dim, out_dim, bias=False).weight.detach().clone())
        self.weight_g = None if fixed_norm else nn.Parameter(torch.ones(out_dim))

    def weight(self) -> torch.Tensor:
        """The effective ``(out_dim, in_dim)`` weight."""
        w = nn.functional.normalize(self.weight_v, dim=1)
        return w if self.weight_g is None else w * self.weight_g[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight())


class DINOHead(nn.Module):
    """DINO's projection head (Caron et al. 2021, Sec. 3.1 and Appendix): a ``layers``-layer MLP with GELUs to a
    ``bottleneck_dim`` output, L2 normalisation, then a weight-normalised linear layer to ``out_dim`` logits.

    Input ``(B, in_dim)``, output ``(B, out_dim)``. Paper: hidden 2048, bottleneck 256, 65536 outputs, no
    BatchNorm (``batch_norm=True`` is the reference's ``use_bn_in_head``), linear weights truncated-normal with
    std 0.02 and zero biases.

    Args:
        in_dim: the backbone's feature dimension.
        out_dim: ``K``, the number of output logits (prototypes).
        hidden_dim, bottleneck_dim, layers: MLP sizes (``layers >= 1``; 1 is a single linear layer).
        batch_norm: BatchNorm1d after each hidden linear layer.
        norm_last_layer: fix the last layer's gain to 1 (see :class:`WeightNormLinear`); DINO's default, turned
            off for its best ViT-S runs.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        layers: int = 3,
        batch_norm: bool = False,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a DINO head needs at least one layer, got {layers}")
        modules: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (layers - 1)
        for a, b in zip(dims[:-1], dims[1:]):
            modules += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if batch_norm else []) + [nn.GELU()]
        modules.append(nn.Linear(dims[-1], bottleneck_dim))
        self.mlp = nn.Sequential(*modules)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, fixed_norm=norm_last_layer)
        self.in_dim, self.out_dim, self.bottleneck_dim = in_dim, out_dim, bottleneck_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_dim)`` features to ``(N, out_dim)`` logits."""
        return self.last_layer(nn.functional.normalize(self.mlp(x), dim=-1))
