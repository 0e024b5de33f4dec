"""JEPA: predict, in latent space, an EMA target encoder's tokens at masked positions from the tokens of the rest
(I-JEPA, Assran et al. 2023, on image patches; the masked log-mel setting of M2D / A-JEPA on spectrogram patches;
T-JEPA, Thimonier et al. 2024, on a table's features: :class:`byol.methods.tjepa.TJEPA`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..core.base import Method, StepOutput
from ..core.schedules import LinearTau, TauSchedule
from ..core.teacher import EMATeacher
from ..losses.jepa import jepa_loss
from ..models.predictor import JEPAPredictor
from ..models.tokens import Tokens, gather_tokens
from ..views.tabular_masks import FeatureMasks
from .jepa_targets import JEPATarget, LastLayer

PredictorFactory = Callable[[tuple[int, int], int, int], JEPAPredictor]
"""Builds the predictor from the encoder's ``(grid, token width d, prefix tokens P)``; in YAML a ``class_path``
with ``init_args``."""


class JEPA(Method):
    """One JEPA for images, audio and tables: a context encoder sees the context positions of each sample, a narrow
    predictor predicts the target encoder's tokens at ``M`` target sets of positions, the loss is the squared error
    against them; the target encoder is an EMA of the context encoder and sees every position. No second view and
    no photometric augmentation: the masks are the task.

    The modality is in the parts: the encoder (anything with the token interface of :mod:`byol.models.tokens`
    and a position ``grid``: a timm ViT for images and log-mels, the tabular transformer), the views (one view per
    sample, :class:`byol.views.jepa.JEPAImageViews`, :class:`byol.views.jepa.JEPAAudioViews`; ``None`` for tables,
    whose rows come preprocessed) and the mask sampler (I-JEPA's :class:`~byol.views.jepa_masks.MultiBlockMasks`,
    :class:`~byol.views.jepa_masks.TimeFrequencyMasks`, :class:`~byol.views.tabular_masks.TabularMasks`), called
    as ``masks(batch, encoder.grid, device)``. What the student regresses is ``targets``: the target encoder's
    last layer, layer-normalised (I-JEPA; :class:`~byol.methods.jepa_targets.LastLayer`), or the instance-normalised
    average of its top layers (data2vec 2.0; ``TopLayersAverage``); dBOT's multi-stage bootstrapped target is
    the ``tau_schedule`` ``StagedTau``. The **target** encoder is what is exported and evaluated (I-JEPA's and
    T-JEPA's choice); its representation is the encoder's ``forward`` (pooled patches for a ViT configured with
    ``global_pool: avg``; every token flattened for a table).

    Args:
        encoder: the context encoder, with ``tokens``, ``pool``, ``grid``, ``token_dim`` and ``num_prefix_tokens``;
            ``None`` when a subclass builds it later (T-JEPA, from the table).
        views: one view per raw sample, with ``preprocess``; ``None``: inputs are used as they come.
        masks: draws :class:`~byol.views.tabular_masks.FeatureMasks` (context ``(B, K_c)`` and targets
            ``(B, M, K_t)`` positions) from ``(batch, grid, device)``.
        predictor: builds the predictor from ``(grid, d, P)``; default :class:`JEPAPredictor`'s small sizes.
        targets: what the student regresses; ``None``: :class:`LastLayer` (layer-normalised).
        tau_schedule: the target's EMA decay; ``None``: linear from 0.996 to 1 (I-JEPA, T-JEPA).
        num_classes: classes of the online probe on the target's representation; ``None``: no probe.
        kwargs: optimisation options of :class:`byol.core.Method` (``optimizer``, ``lr_schedule``,
            ``warmup_epochs``, ``weight_decay_end``, ``lr_reference_batch``, ``probe_lr``, ``compile``).
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        views: nn.Module | None,
        masks: nn.Module,
        predictor: PredictorFactory = JEPAPredictor,
        targets: JEPATarget | None = None,
        tau_schedule: TauSchedule | None = None,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        feature_dim = None if encoder is None else encoder.num_features
        super().__init__(feature_dim=feature_dim, num_classes=num_classes, **kwargs)
        self.views, self.masks = views, masks
        self.predictor_factory = predictor
        self.targets = targets if targets is not None else LastLayer()
        self.tau_schedule = tau_schedule if tau_schedule is not None else LinearTau(base=0.996, final=1.0)
        self.predictor: nn.Module | None = None
        if encoder is not None:
            self.build_networks(encoder)

    def build_networks(self, encoder: nn.Module) -> None:
        """The context encoder, its EMA target and the predictor for the encoder's grid of positions."""
        self.online = encoder
        self.target = EMATeacher(encoder, self.tau_schedule)
        self.predictor = self.predictor_factory(tuple(encoder.grid), encoder.token_dim, encoder.num_prefix_tokens)

    # ----- the representation ---------------------------------------------------------------------
    @property
    def backbone(self) -> nn.Module:
        """The target encoder: what is evaluated and what ``byol export`` writes (prefix ``target.module.``)."""
        return self.target.module

    def eval_batch(self, batch: tuple[Any, Tensor]) -> tuple[Any, Tensor]:
        if self.views is None:
            return batch  # rows arrive preprocessed
        return super().eval_batch(batch)

    # ----- training -------------------------------------------------------------------------------
    def training_views(self, batch: tuple[Any, Tensor]) -> tuple[Any, FeatureMasks, Tensor]:
        """On the device: ``(view, masks, labels)``, the masks drawn for the encoder's grid."""
        inputs, labels = batch
        x = inputs if self.views is None else self._format(self.views(inputs))
        return x, self.masks(len(labels), tuple(self.online.grid), labels.device), labels

    def predict_targets(self, x: Any, masks: FeatureMasks) -> Tensor:
        """Context encoder on the context positions, then the predictor: ``(B, M, K_t, d)``."""
        context = self.online.tokens(x, keep=masks.context)
        return self.predictor(context.sequence, masks.context, masks.targets)

    @torch.no_grad()
    def target_tokens(self, x: Any) -> Tokens:
        """The target encoder's output tokens of the whole input (it sees every position)."""
        return self.backbone.tokens(x)

    def compute_loss(self, batch: tuple[Any, FeatureMasks, Tensor]) -> StepOutput:
        x, masks, labels = batch
        with torch.no_grad():
            final = self.target_tokens(x)
            targets = gather_tokens(self.targets(self.backbone, x, final), masks.targets)  # (B, M, K_t, d)
            representation = self.backbone.pool(final)
        loss = jepa_loss(self.predict_targets(x, masks), targets)
        return StepOutput(loss, representation, representation, labels, self.target_spread(targets, loss))

    @staticmethod
    def target_spread(targets: Tensor, loss: Tensor) -> dict[str, Tensor]:
        """What separates learning from shrinking: the spread of the targets over the batch, ``target_std``
        (per position and channel, averaged), and the loss relative to it, ``loss_over_variance`` (1: no better
        than predicting every position's batch-mean token). A loss that falls while ``target_std`` falls with it
        is the targets collapsing towards a constant per position, not the predictor learning (on T-JEPA's
        tables, where the fixed feature-index encodings dominate the tokens, that is what a falling loss was)."""
        variance = targets.detach().float().var(dim=0, unbiased=False).mean()
        return {"target_std": variance.sqrt(), "loss_over_variance": loss.detach() / variance.clamp_min(1e-12)}
