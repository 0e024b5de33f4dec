"""BYOL-A (Niizumi et al. 2021, arXiv:2103.06695; v2: Niizumi et al. 2023, arXiv:2204.07402): BYOL on two
augmented views of one log-mel segment, made on the device from raw waveform batches."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..core.optim import OptimizerFactory
from ..core.schedules import Constant, ConstantTau, TauSchedule, WarmupCosine
from ..views.audio import BYOLAViews
from ..views.audio_norm import DatasetNorm, log_mel_moments
from .byol import BYOL


class BYOLA(BYOL):
    """BYOL-A on float waveform segments ``(B, L)`` (e.g. :class:`byol.data.audio.AudioFolder`).

    :class:`BYOL` (same online/target networks, heads and loss) with audio views made on the device. The papers'
    recipe: projector and predictor ``Linear(4096) - BN - ReLU - Linear(256)``, the symmetrised BYOL
    loss, Adam with a constant learning rate (3e-4 in v1, 1e-4 in v2), a fixed EMA decay of 0.99, batch 256.

    With ``pre_norm="dataset"`` views (v2) and no known statistics, the log-mel mean and std of up to
    ``norm_samples`` random training clips are computed once at the start of fit (the paper uses 10,000),
    over all DDP ranks; they are kept in the checkpoint, so a resumed run does not recompute them.

    Args:
        backbone: log-mels ``(B, 1, F, T)`` to ``(B, D)`` with ``num_features = D``
            (:class:`byol.models.audio_ntt.AudioNTT2020` or ``AudioNTT2022``).
        views: the augmentation pipeline (:class:`byol.views.audio.BYOLAViews`, or ``BYOLAv1Views``).
        projector_hidden_dim, projection_dim, predictor_hidden_dim: head sizes (paper: 4096, 256, 4096).
        optimizer, warmup_epochs, num_classes, probe_lr: see :class:`byol.core.OnlineTargetModule`.
        tau_schedule: EMA decay; ``None``: the papers' constant 0.99.
        constant_lr: keep the learning rate constant after the warm-up, as the papers do; ``False`` decays it
            along the core's cosine.
        norm_samples: clips for the dataset statistics of ``pre_norm="dataset"``.
        compile: see :class:`BYOL`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: BYOLAViews,
        projector_hidden_dim: int = 4096,
        projection_dim: int = 256,
        predictor_hidden_dim: int = 4096,
        optimizer: OptimizerFactory = torch.optim.Adam,
        tau_schedule: TauSchedule | None = None,
        warmup_epochs: float = 0.0,
        num_classes: int | None = None,
        probe_lr: float = 1e-3,
        constant_lr: bool = True,
        norm_samples: int = 10000,
        compile: bool | dict[str, Any] = False,
    ) -> None:
        super().__init__(
            backbone, views, projector_hidden_dim, projection_dim, predictor_hidden_dim, optimizer=optimizer,
            tau_schedule=tau_schedule if tau_schedule is not None else ConstantTau(value=0.99),
            warmup_epochs=warmup_epochs, num_classes=num_classes, probe_lr=probe_lr,
            compile=compile,
        )
        self.constant_lr = constant_lr
        self.norm_samples = norm_samples

    # ----- data on the device ------------------------------------------------------------------
    def training_views(self, batch: tuple[torch.Tensor, torch.Tensor]):
        """Waveforms ``(B, L)`` and labels to ``(view1, view2, labels)``, views ``(B, 1, F, T)``, on the device."""
        waves, labels = batch
        v1, v2 = self.views(waves, epoch=self.current_epoch)
        return v1, v2, labels

    def eval_batch(self, batch: tuple[torch.Tensor, torch.Tensor]):
        waves, labels = batch
        return self.views.preprocess(waves), labels

    def export_preprocessing(self) -> dict:
        """What an exported backbone expects: 16 kHz waveforms, the log-mel front end and the pre-norm statistics."""
        return self.views.preprocessing.export_config()

    # ----- dataset statistics (v2 pre-normalisation) --------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.views.pre_norm.needs_statistics:
            self._compute_norm_statistics()

    @torch.no_grad()
    def _compute_norm_statistics(self) -> None:
        """Log-mel mean and std of ``norm_samples`` random training clips, split over the DDP ranks."""
        self.trainer.fit_loop.setup_data()  # a no-op once the loop has its loader (configure_optimizers sets it up)
        loader = self.trainer.train_dataloader
        dataset = loader.dataset
        g = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(len(dataset), generator=g)[: self.norm_samples]
        shard = chosen[self.global_rank :: self.trainer.world_size].tolist()
        moments = torch.zeros(3, dtype=torch.float64, device=self.device)
        for waves, _ in DataLoader(Subset(dataset, shard), batch_size=loader.batch_size, num_workers=loader.num_workers):
            moments += log_mel_moments(self.views.log_mel(waves.to(self.device)))
        moments = self.trainer.strategy.reduce(moments, reduce_op="sum")
        norm = self.views.pre_norm
        assert isinstance(norm, DatasetNorm)
        norm.set_from_moments(moments)
        mean, std = norm.statistics()
        self.print(f"BYOL-A pre-normalisation: log-mel mean {mean:.4f}, std {std:.4f} over {len(chosen)} clips")

    # ----- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """The core's optimiser and parameter groups; with ``constant_lr``, a constant rate after the warm-up."""
        config = super().configure_optimizers()
        if self.constant_lr:
            optimizer = config["optimizer"]
            constant = WarmupCosine(self.total_steps, self._warmup_steps(), final_factor=1.0)  # no decay
            factors: list = [constant] * len(optimizer.param_groups)
            if self.probe is not None:
                factors[-1] = Constant()
            config["lr_scheduler"]["scheduler"] = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
        return config

