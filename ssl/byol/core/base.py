"""The Lightning core shared by every online/target method (BYOL, BYOL-A, T-JEPA)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from .ema import ema_update, make_target
from .monitor import OnlineLinearProbe, embedding_std, rankme
from .optim import OptimizerFactory, param_groups
from .schedules import Constant, CosineTau, TauSchedule, WarmupCosine


class OnlineTargetModule(L.LightningModule):
    """Base LightningModule: an ``online`` network, its EMA ``target``, optimisation and monitoring.

    Subclasses build the online network (for BYOL: backbone + projector) and
    whatever is online-only (the predictor), pass the online network here, and
    write ``training_step`` and :meth:`embed`. This class owns:

    - ``self.target``: a frozen copy of ``online`` that never receives gradients
      and moves by EMA **once per optimizer step** (in :meth:`optimizer_step`,
      which Lightning calls once per step also under gradient accumulation),
      ``t <- tau * t + (1 - tau) * o`` with ``tau = tau_schedule(global_step,
      total_steps)``. Buffers are copied (see :mod:`byol.core.ema`).
    - One optimizer, built by ``optimizer`` from parameter groups: weights with
      weight decay; biases and norm parameters without (and so without LARS
      adaptation); the online probe in its own group with its own learning rate
      and no decay. Learning rate: linear warm-up, then cosine, per step.
    - Monitoring: an online linear probe on detached features (its loss never
      reaches the backbone, and gradient clipping skips it), the std of the
      normalised projections and the effective rank of the embeddings.

    Args:
        online: the network the target copies.
        optimizer: callable from parameter groups to an optimizer (LightningCLI ``class_path``).
        tau_schedule: EMA decay schedule, a function of the step.
        warmup_epochs: epochs of linear learning-rate warm-up (fractional allowed).
        feature_dim: dimension of :meth:`embed`'s output, for the probe.
        num_classes: classes of the online probe; ``None`` disables it.
        probe_lr: learning rate of the online probe (constant).
    """

    def __init__(
        self,
        online: nn.Module,
        optimizer: OptimizerFactory = torch.optim.AdamW,
        tau_schedule: TauSchedule = lazy_instance(CosineTau, base=0.996),
        warmup_epochs: float = 0.0,
        feature_dim: int | None = None,
        num_classes: int | None = None,
        probe_lr: float = 0.1,
    ) -> None:
        super().__init__()
        self.online = online
        self.target = make_target(online)
        self.optimizer_factory = optimizer
        self.tau_schedule = tau_schedule
        self.warmup_epochs = warmup_epochs
        self.probe_lr = probe_lr
        self.probe: OnlineLinearProbe | None = None
        if num_classes is not None:
            if feature_dim is None:
                raise ValueError("feature_dim is needed for the online probe")
            self.probe = OnlineLinearProbe(feature_dim, num_classes)
            self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")

    # ----- the representation ---------------------------------------------------------------
    def embed(self, x: Any) -> torch.Tensor:
        """Backbone features ``(B, D)`` of an evaluation batch (preprocessed inputs)."""
        raise NotImplementedError

    # ----- target update --------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run (the length of the tau and lr schedules)."""
        return max(int(self.trainer.estimated_stepping_batches), 1)

    def current_tau(self) -> float:
        return self.tau_schedule(self.trainer.global_step, self.total_steps)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Lightning calls this once per optimizer step; global_step counts the steps completed before it.
        tau = self.current_tau()
        ema_update(self.target, self.online, tau)
        self.log("train/tau", tau, on_step=True, on_epoch=False)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    # ----- monitoring -------------------------------------------------------------------------
    def log_monitors(self, embeddings: torch.Tensor, projections: torch.Tensor) -> None:
        """Log label-free collapse signals of one view: ``(B, D)`` embeddings and ``(B, P)`` projections."""
        self.log("train/proj_std", embedding_std(projections), on_step=True, on_epoch=False)
        self.log("train/rankme", rankme(embeddings), on_step=True, on_epoch=False)

    def probe_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Online-probe loss on detached ``(B, D)`` features (0 when the probe is off)."""
        if self.probe is None:
            return features.new_zeros(())
        loss, logits = self.probe(features, labels)
        labeled = labels >= 0
        if labeled.any():
            acc = (logits[labeled].argmax(1) == labels[labeled]).float().mean()
            self.log("train/probe_acc", acc, on_step=True, on_epoch=True, prog_bar=True)
            self.log("train/probe_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        if self.probe is None:
            return
        x, y = batch
        logits = self.probe.linear(self.embed(x).float())
        self.val_top1.update(logits, y)
        self.log("val/probe_top1", self.val_top1, on_step=False, on_epoch=True, prog_bar=True)

    # ----- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        groups = param_groups(self, exclude=("target.", "probe."))
        lambdas: list = [WarmupCosine(self.total_steps, self._warmup_steps())] * len(groups)
        if self.probe is not None:
            groups.append({"params": list(self.probe.parameters()), "lr": self.probe_lr, "weight_decay": 0.0})
            lambdas.append(Constant())
        optimizer = self.optimizer_factory(groups)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _warmup_steps(self) -> int:
        max_epochs = self.trainer.max_epochs
        if not max_epochs or max_epochs < 0:
            return 0
        return int(self.warmup_epochs * self.total_steps / max_epochs)

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        """Clip the method's gradients only: the probe's gradients never change the backbone's update."""
        if gradient_clip_val is None or gradient_clip_val == 0:
            return
        params = [p for n, p in self.named_parameters() if not n.startswith("probe.") and p.grad is not None]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
