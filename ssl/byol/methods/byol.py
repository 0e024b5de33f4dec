"""BYOL (Grill et al. 2020): predict the target's projection of one view from the other."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.base import OnlineTargetModule
from ..core.heads import BYOLPredictionHead, BYOLProjectionHead
from ..losses import symmetric_byol_loss
from ..core.optim import OptimizerFactory
from ..core.schedules import TauSchedule
from ..views.image import BYOLImageViews


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


class BYOL(OnlineTargetModule):
    """BYOL on images. Views are made on the device from uint8 batches.

    Args:
        backbone: maps ``(B, C, H, W)`` images to ``(B, D)`` features and has
            ``num_features = D`` (e.g. :class:`byol.models.TimmBackbone`).
        views: the augmentation pipeline (:class:`byol.views.BYOLImageViews` or a preset).
        projector_hidden_dim, projection_dim, predictor_hidden_dim: head sizes
            (paper: 4096, 256, 4096).
        optimizer, tau_schedule, warmup_epochs, num_classes, probe_lr, lr_reference_batch: see
            :class:`byol.core.OnlineTargetModule`.
        channels_last: store weights and views in channels-last memory format
            (faster convolutions on tensor-core GPUs).
        compile: ``torch.compile`` the online and target networks (backbone and projector) in place at the
            start of fit, so checkpoints and exported weights keep their parameter names; ``True`` for torch's
            defaults, or a dict of ``torch.compile`` options (``{"mode": "max-autotune"}``). The first steps pay
            the compilation; evaluation runs eager.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: BYOLImageViews,
        projector_hidden_dim: int = 4096,
        projection_dim: int = 256,
        predictor_hidden_dim: int = 4096,
        optimizer: OptimizerFactory = torch.optim.AdamW,
        tau_schedule: TauSchedule | None = None,
        warmup_epochs: float = 10.0,
        num_classes: int | None = None,
        probe_lr: float = 0.1,
        lr_reference_batch: int | None = None,
        channels_last: bool = False,
        compile: bool | dict[str, Any] = False,
    ) -> None:
        dim = backbone.num_features
        super().__init__(
            online=Encoder(backbone, BYOLProjectionHead(dim, projector_hidden_dim, projection_dim)),
            optimizer=optimizer,
            tau_schedule=tau_schedule,
            warmup_epochs=warmup_epochs,
            feature_dim=dim,
            num_classes=num_classes,
            probe_lr=probe_lr,
            lr_reference_batch=lr_reference_batch,
        )
        self.predictor = BYOLPredictionHead(projection_dim, predictor_hidden_dim)
        self.views = views
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.compile_options = compile

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.compile_options is not False:
            options = {} if self.compile_options is True else dict(self.compile_options)
            self.online.compile(**options)
            self.target.compile(**options)

    @property
    def backbone(self) -> nn.Module:
        return self.online.backbone

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def training_views(self, batch: tuple[torch.Tensor, torch.Tensor]):
        """uint8 images ``(B, C, H, W)`` and labels to ``(view1, view2, labels)``, on the device."""
        images, labels = batch
        v1, v2 = self.views(images)
        return self._format(v1), self._format(v2), labels

    def eval_batch(self, batch: tuple[torch.Tensor, torch.Tensor]):
        images, labels = batch
        return self._format(self.views.preprocess(images)), labels

    def export_preprocessing(self) -> dict:
        """What an exported backbone expects: uint8 images, centre-cropped, scaled to [0, 1], normalised."""
        return self.views.preprocessing.export_config()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    nonfinite_hint = "lower the learning rate, check the inputs, or use bf16-mixed instead of 16-mixed precision"

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        v1, v2, labels = batch
        f1, z1 = self.online(v1)
        f2, z2 = self.online(v2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        with torch.no_grad():
            _, t1 = self.target(v1)
            _, t2 = self.target(v2)
        loss = symmetric_byol_loss(p1, p2, t1, t2)
        self.check_finite(loss)
        self.log_loss(loss)
        self.log_monitors(f1.detach(), z1.detach())
        return loss + self.probe_loss(f1, labels)
