"""BYOL (Grill et al. 2020): predict the EMA target's projection of one view from the other view; optionally also
the targets of the batch's other samples that the target labels as similar (Garg & Jain 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.base import Method, StepOutput
from ..core.heads import BYOLPredictionHead, BYOLProjectionHead, Encoder
from ..core.schedules import CosineTau, TauSchedule
from ..core.teacher import EMATeacher
from ..losses import CrossCosineLoss, symmetric_byol_loss


class BYOL(Method):
    """BYOL on any modality: images (the image view presets and a timm backbone), audio (BYOL-A's views and an
    AudioNTT encoder), tables (tabular views and the feature-token transformer).

    Args:
        backbone: maps the views ``(B, ...)`` to ``(B, D)`` features and has ``num_features = D``.
        views: makes two views of a raw batch on the device and has the evaluation ``preprocess``.
        projector_hidden_dim, projection_dim, predictor_hidden_dim: head sizes (paper: 4096, 256, 4096).
        tau_schedule: the target's EMA decay; ``None``: the paper's cosine from 0.996 to 1.
        cross_similarity: adds a cross-similarity loss in both directions, ``CrossCosineLoss()`` (CCSL) or
            ``CrossSigmoidLoss()`` (CSSL); ``None``: BYOL's loss alone.
        kwargs: optimisation, probe and speed options of :class:`byol.core.Method` (``optimizer``,
            ``lr_schedule``, ``warmup_epochs``, ``lr_reference_batch``, ``num_classes``, ``probe_lr``,
            ``channels_last``, ``compile``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: nn.Module,
        projector_hidden_dim: int = 4096,
        projection_dim: int = 256,
        predictor_hidden_dim: int = 4096,
        tau_schedule: TauSchedule | None = None,
        cross_similarity: CrossCosineLoss | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim=backbone.num_features, **kwargs)
        self.online = Encoder(backbone, BYOLProjectionHead(backbone.num_features, projector_hidden_dim, projection_dim))
        self.target = EMATeacher(self.online, tau_schedule if tau_schedule is not None else CosineTau(base=0.996))
        self.predictor = BYOLPredictionHead(projection_dim, predictor_hidden_dim)
        self.views = views
        self.cross_similarity = cross_similarity
        self.finish_setup()

    nonfinite_hint = "lower the learning rate, check the inputs, or use bf16-mixed instead of 16-mixed precision"

    def compute_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> StepOutput:
        v1, v2, labels = batch
        f1, z1, z2 = self.encode_views(v1, v2)
        with torch.no_grad():
            _, t1 = self.target(v1)
            _, t2 = self.target(v2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss, logs = symmetric_byol_loss(p1, p2, t1, t2), {}
        if self.cross_similarity is not None:
            cross = self.cross_similarity(p1, t2) + self.cross_similarity(p2, t1)
            loss, logs = loss + cross, {"cross_similarity": cross.detach()}
        return StepOutput(loss, f1, z1, labels, logs)
