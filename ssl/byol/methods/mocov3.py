"""MoCo v3 (Chen, Xie & He 2021): each view's query finds its own sample's momentum key among the keys of the
global batch (InfoNCE)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.base import Method, StepOutput
from ..core.heads import MLP, Encoder
from ..core.schedules import CosineTau, TauSchedule
from ..core.teacher import EMATeacher
from ..losses import symmetric_infonce


class MoCoV3(Method):
    """MoCo v3 on any modality: a momentum encoder (backbone + projector) and a predictor, InfoNCE over the keys
    of every rank, symmetrised, scaled by ``2 x temperature``.

    Args:
        backbone: maps the views to ``(B, D)`` features and has ``num_features = D``.
        views: makes two views of a raw batch on the device.
        projector_hidden_dim, projection_dim, predictor_hidden_dim: head sizes (paper, ResNet-50: 4096, 256,
            4096; both heads are two layers ending in BatchNorm).
        temperature: InfoNCE temperature (paper: 0.2).
        tau_schedule: the momentum encoder's decay; ``None``: the paper's cosine from 0.99 to 1.
        kwargs: optimisation, probe and speed options of :class:`byol.core.Method`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: nn.Module,
        projector_hidden_dim: int = 4096,
        projection_dim: int = 256,
        predictor_hidden_dim: int = 4096,
        temperature: float = 0.2,
        tau_schedule: TauSchedule | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim=backbone.num_features, **kwargs)
        projector = MLP(backbone.num_features, projector_hidden_dim, projection_dim, layers=2, output_norm=True)
        self.online = Encoder(backbone, projector)
        self.target = EMATeacher(self.online, tau_schedule if tau_schedule is not None else CosineTau(base=0.99))
        self.predictor = MLP(projection_dim, predictor_hidden_dim, projection_dim, layers=2, output_norm=True)
        self.views = views
        self.temperature = temperature
        self.finish_setup()

    def compute_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> StepOutput:
        v1, v2, labels = batch
        f1, z1, z2 = self.encode_views(v1, v2)
        with torch.no_grad():
            _, k1 = self.target(v1)
            _, k2 = self.target(v2)
        loss = symmetric_infonce(self.predictor(z1), self.predictor(z2), k1, k2, self.temperature)
        return StepOutput(loss, f1, z1, labels)
