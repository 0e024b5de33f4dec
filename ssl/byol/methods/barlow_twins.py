"""Barlow Twins (Zbontar et al. 2021): drive the cross-correlation of two views' embeddings to the identity;
optionally with the mixed-sample regulariser of Bandara et al. 2023."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.base import Method, StepOutput
from ..core.heads import MLP, Encoder
from ..losses import barlow_twins_loss, mixed_sample_regularizer


class BarlowTwins(Method):
    """Barlow Twins on any modality: a three-layer projector, no predictor, no teacher; the loss over the global
    batch.

    Args:
        backbone: maps the views to ``(B, D)`` features and has ``num_features = D``.
        views: makes two views of a raw batch on the device.
        projector_hidden_dim, projection_dim: projector sizes (paper: 8192, 8192; three layers).
        lambd: weight of the redundancy-reduction term (paper: 0.0051).
        scale_loss: factor on the whole loss (solo-learn's CIFAR recipe: 0.1; the paper's first release: 1/32).
        mixed_samples: weight ``lambda_reg`` of the mixed-sample regulariser ("Guarding Barlow Twins Against
            Overfitting with Mixed Samples": 4 on CIFAR, 2 on STL-10, 1-2 on ImageNet), which is added as
            ``lambda_reg * lambd * R``; 0 turns it off. Each step mixes view 1 with a permutation of view 2,
            ``alpha ~ Beta(1, 1)``.
        kwargs: optimisation, probe and speed options of :class:`byol.core.Method`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: nn.Module,
        projector_hidden_dim: int = 8192,
        projection_dim: int = 8192,
        lambd: float = 0.0051,
        scale_loss: float = 1.0,
        mixed_samples: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim=backbone.num_features, **kwargs)
        self.online = Encoder(backbone, MLP(backbone.num_features, projector_hidden_dim, projection_dim, layers=3))
        self.views = views
        self.lambd = lambd
        self.scale_loss = scale_loss
        self.mixed_samples = mixed_samples
        self.finish_setup()

    def compute_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> StepOutput:
        v1, v2, labels = batch
        f1, z1, z2 = self.encode_views(v1, v2)
        loss = barlow_twins_loss(z1, z2, self.lambd)
        logs = {}
        if self.mixed_samples > 0:
            alpha = float(torch.rand(()))  # Beta(1, 1) is uniform; drawn on the host, so no device sync
            perm = torch.randperm(len(v1), device=v1.device)
            _, z_mixed = self.online(alpha * v1 + (1 - alpha) * v2[perm])
            logs["mix_regularizer"] = mixed_sample_regularizer(z1, z2, z_mixed, z2[perm], alpha)
            loss = loss + self.mixed_samples * self.lambd * logs["mix_regularizer"]
        return StepOutput(self.scale_loss * loss, f1, z1, labels, logs)
