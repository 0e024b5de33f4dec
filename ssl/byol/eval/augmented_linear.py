"""The papers' augmented linear protocol: a linear head on a frozen backbone, with random crops on the fly."""

from __future__ import annotations

import kornia.augmentation as K
import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ..views.image import ImagePreprocess


class AugmentedLinearProbe(L.LightningModule):
    """Linear classifier on a frozen image backbone trained with random resized crop + flip.

    The protocol of BYOL (Grill et al. 2020, App. C.1) and SimCLR: 80-100
    epochs, SGD with Nesterov momentum 0.9, cosine learning rate, no weight
    decay; the backbone stays in eval mode (BN statistics frozen) and gets no
    gradient. Test accuracy (top-1/top-5, torchmetrics, synchronised over DDP
    ranks) is measured on centre crops.

    Args:
        backbone: frozen encoder, ``(B, C, S, S) -> (B, D)``.
        preprocess: the backbone's evaluation transform (size, mean, std).
        num_classes: number of classes ``C``.
        lr: learning rate (the papers scale 0.1-0.4 with batch/256).
        crop_scale: area range of the random crops.
    """

    def __init__(
        self,
        backbone: nn.Module,
        preprocess: ImagePreprocess,
        num_classes: int,
        lr: float = 0.1,
        weight_decay: float = 0.0,
        crop_scale: tuple[float, float] = (0.08, 1.0),
    ) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.augment = nn.Sequential(
            K.RandomResizedCrop((preprocess.size, preprocess.size), scale=crop_scale),
            K.RandomHorizontalFlip(),
        )
        self.head = nn.Linear(backbone.num_features, num_classes)
        self.lr, self.weight_decay = lr, weight_decay
        self.top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")

    def train(self, mode: bool = True) -> AugmentedLinearProbe:
        super().train(mode)
        self.backbone.eval()  # frozen BN statistics, whatever Lightning asks
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.backbone(x).float()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = self.preprocess.normalise(self.augment(self.preprocess.to_unit_float(images)))
        loss = F.cross_entropy(self.head(self._features(x)), labels)
        self.log("linear/train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self.head(self._features(self.preprocess(images)))
        self.top1.update(logits, labels)
        self.top5.update(logits, labels)
        self.log("linear/test_top1", self.top1, prog_bar=True)
        self.log("linear/test_top5", self.top5)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.head.parameters(), lr=self.lr, momentum=0.9, nesterov=True,
                              weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(self.trainer.estimated_stepping_batches), 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
