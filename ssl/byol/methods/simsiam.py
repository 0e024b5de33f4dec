"""SimSiam (Chen & He 2021): BYOL without a momentum network; the other branch is the same network behind a
stop-gradient."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.base import Method, StepOutput
from ..core.heads import MLP, Encoder
from ..core.optim import param_groups
from ..losses import symmetric_negative_cosine


class SimSiam(Method):
    """SimSiam on any modality: a projector ending in BatchNorm, a bottleneck predictor, no teacher.

    Args:
        backbone: maps the views to ``(B, D)`` features and has ``num_features = D``.
        views: makes two views of a raw batch on the device.
        projector_hidden_dim, projection_dim, projector_layers: projector sizes (paper, ImageNet: 2048, 2048, 3
            layers; CIFAR: 2 layers).
        predictor_hidden_dim: the predictor's bottleneck (paper: 512 = projection_dim / 4).
        fixed_predictor_lr: keep the predictor's learning rate constant while the rest follows the schedule
            (the paper's choice, Sec. 4.2); it is still scaled with ``lr_reference_batch``.
        kwargs: optimisation, probe and speed options of :class:`byol.core.Method`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: nn.Module,
        projector_hidden_dim: int = 2048,
        projection_dim: int = 2048,
        projector_layers: int = 3,
        predictor_hidden_dim: int = 512,
        fixed_predictor_lr: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim=backbone.num_features, **kwargs)
        projector = MLP(backbone.num_features, projector_hidden_dim, projection_dim, projector_layers, output_norm=True)
        self.online = Encoder(backbone, projector)
        self.predictor = MLP(projection_dim, predictor_hidden_dim, projection_dim, layers=2)
        self.views = views
        self.fixed_predictor_lr = fixed_predictor_lr
        self.finish_setup()

    def parameter_groups(self) -> list[dict[str, Any]]:
        predictor = param_groups(self.predictor, fixed_lr=True) if self.fixed_predictor_lr else param_groups(self.predictor)
        return param_groups(self, exclude=("probe.", "predictor.")) + predictor

    def compute_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> StepOutput:
        v1, v2, labels = batch
        f1, z1, z2 = self.encode_views(v1, v2)
        loss = symmetric_negative_cosine(self.predictor(z1), self.predictor(z2), z1, z2)  # z detached inside
        return StepOutput(loss, f1, z1, labels)
