"""VICReg (Bardes, Ponce & LeCun 2022): invariance between views, variance kept above a margin, covariance
driven to zero, over the global batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.base import Method, StepOutput
from ..core.heads import MLP, Encoder
from ..losses import vicreg_terms


class VICReg(Method):
    """VICReg on any modality: a three-layer expander, no predictor, no teacher.

    Args:
        backbone: maps the views to ``(B, D)`` features and has ``num_features = D``.
        views: makes two views of a raw batch on the device.
        projector_hidden_dim, projection_dim: expander sizes (paper: 8192, 8192; three layers).
        invariance, variance, covariance: the terms' weights (paper: 25, 25, 1).
        kwargs: optimisation, probe and speed options of :class:`byol.core.Method`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: nn.Module,
        projector_hidden_dim: int = 8192,
        projection_dim: int = 8192,
        invariance: float = 25.0,
        variance: float = 25.0,
        covariance: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim=backbone.num_features, **kwargs)
        self.online = Encoder(backbone, MLP(backbone.num_features, projector_hidden_dim, projection_dim, layers=3))
        self.views = views
        self.weights = (invariance, variance, covariance)
        self.finish_setup()

    def compute_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> StepOutput:
        v1, v2, labels = batch
        f1, z1, z2 = self.encode_views(v1, v2)
        terms = vicreg_terms(z1, z2)
        loss = sum(w * t for w, t in zip(self.weights, terms))
        return StepOutput(loss, f1, z1, labels, terms._asdict())
