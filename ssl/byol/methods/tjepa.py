"""T-JEPA (Thimonier et al. 2024): predict, in latent space, the target encoder's tokens of features from others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from ..core.base import Method, StepOutput
from ..core.monitor import OnlineLinearProbe
from ..core.schedules import LinearTau, TauSchedule
from ..core.teacher import EMATeacher
from ..models.tabular import TabularTransformer, TJEPAPredictor
from ..models.tokens import Tokens, gather_tokens
from ..views.tabular_masks import FeatureMasks, TabularMasks

EncoderFactory = Callable[[int, list[int]], TabularTransformer]
"""Builds the encoder for a table from ``(num_numeric, cardinalities)``; in YAML a ``class_path`` with ``init_args``."""

PredictorFactory = Callable[[int, int, int], TJEPAPredictor]
"""Builds the predictor from ``(num_features, encoder_dim, num_reg_tokens)``."""


def jepa_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error between predicted and target-encoder tokens (the paper's and reference's ``MSELoss``).

    Args:
        predictions: ``(B, M, K_t, d)`` predictor outputs.
        targets: ``(B, M, K_t, d)`` target-encoder tokens of the same features (detached here).

    Returns:
        Scalar tensor, the mean over all elements.
    """
    if predictions.shape != targets.shape or predictions.ndim != 4:
        raise ValueError(
            "predictions and targets must both be (B, M, K_t, d), "
            f"got {tuple(predictions.shape)} and {tuple(targets.shape)}"
        )
    return F.mse_loss(predictions.float(), targets.detach().float())


class TJEPA(Method):
    """T-JEPA on tables: the context encoder sees a subset of a row's features, the predictor predicts the target
    encoder's tokens of disjoint target subsets, the target encoder (an EMA of the context encoder) sees the whole row.

    The networks depend on the table (feature count, category cardinalities),
    which only the fitted preprocessing of the datamodule knows: they are built
    in :meth:`configure_model` from ``trainer.datamodule.preprocessing`` (a
    :class:`byol.data.tabular.TabularDataModule`), or by :meth:`build`. Lightning
    calls ``configure_model`` before it sets up the optimizer and before it
    restores a checkpoint, so neither sees a half-built model;
    ``TJEPA.load_from_checkpoint`` rebuilds them from the checkpoint's metadata.

    The exported backbone is the **target** encoder (the paper evaluates it):
    :attr:`backbone` is the teacher's copy, and the saved preprocessing is the
    datamodule's (column types, statistics, category maps).

    Args:
        encoder: builds the encoder from ``(num_numeric, cardinalities)``
            (:class:`byol.models.tabular.TabularTransformer` and its hyper-parameters).
        predictor: builds the predictor from ``(F, d, R)`` (:class:`byol.models.tabular.TJEPAPredictor`).
        masks: context/target mask sampler; ``None``: :class:`TabularMasks` with its defaults.
        tau_schedule: EMA decay; ``None``: the paper's linear 0.996 -> 1.
        num_classes: classes of the online probe on the target's flattened
            representation; ``"auto"``: the table's classes for a classification
            target, no probe otherwise; ``None``: no probe.
        kwargs: optimisation options of :class:`byol.core.Method` (``optimizer``, ``lr_schedule``,
            ``warmup_epochs``, ``lr_reference_batch``, ``probe_lr``).
    """

    def __init__(
        self,
        encoder: EncoderFactory = TabularTransformer,
        predictor: PredictorFactory = TJEPAPredictor,
        masks: TabularMasks | None = None,
        tau_schedule: TauSchedule | None = None,
        num_classes: int | Literal["auto"] | None = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=None, **kwargs)  # the probe is built with the networks, in build()
        self.tau_schedule = tau_schedule if tau_schedule is not None else LinearTau(base=0.996, final=1.0)
        self.encoder_factory, self.predictor_factory = encoder, predictor
        self.masks = masks if masks is not None else TabularMasks()
        self.num_classes = num_classes
        self.predictor: TJEPAPredictor | None = None
        self.preprocessing: dict[str, Any] | None = None

    # ----- construction ---------------------------------------------------------------------------
    def build(
        self, num_numeric: int, cardinalities: Sequence[int], preprocessing: dict[str, Any], num_classes: int | None
    ) -> None:
        """Create encoder, target, predictor and probe for a table.

        Args:
            num_numeric, cardinalities: the table's schema (``preprocessing.num_numeric``, ``.cardinalities``).
            preprocessing: the fitted preprocessing's ``export_config()``, saved with the model.
            num_classes: classes of the table's target (``None`` for regression or no target);
                used when the probe is ``"auto"``.
        """
        encoder = self.encoder_factory(num_numeric, list(cardinalities))
        self.online = encoder
        self.target = EMATeacher(encoder, self.tau_schedule)
        self.predictor = self.predictor_factory(encoder.num_table_features, encoder.dim, encoder.num_reg_tokens)
        self.preprocessing = preprocessing
        classes = num_classes if self.num_classes == "auto" else self.num_classes
        if classes is not None:
            self.probe = OnlineLinearProbe(encoder.num_features, classes)
            self.val_top1 = MulticlassAccuracy(classes, top_k=1, average="micro")

    def configure_model(self) -> None:
        """Build the networks from the datamodule's fitted preprocessing (once; later calls do nothing).

        Outside a Trainer (``TJEPA.load_from_checkpoint``) it does nothing: :meth:`on_load_checkpoint` builds.
        """
        if self.predictor is not None or self._trainer is None:
            return
        preprocessing = getattr(self.trainer.datamodule, "preprocessing", None)
        if preprocessing is None:
            raise TypeError(
                "TJEPA builds its encoder from the table's fitted preprocessing: train it with a tabular datamodule "
                "(byol.data.tabular.TableFileDataModule, RTDLSplitDataModule, SklearnTableDataModule) "
                "or call build() first"
            )
        self.build(preprocessing.num_numeric, preprocessing.cardinalities, preprocessing.export_config(),
                   preprocessing.num_classes)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the networks from the checkpoint's metadata when loading into a fresh instance."""
        super().on_load_checkpoint(checkpoint)
        if self.predictor is None:
            meta = checkpoint["byol"]
            probe = checkpoint["state_dict"].get("probe.linear.weight")
            self.build(meta["backbone"]["num_numeric"], meta["backbone"]["cardinalities"], meta["preprocessing"],
                       None if probe is None else probe.shape[0])

    # ----- the representation ---------------------------------------------------------------------
    @property
    def backbone(self) -> nn.Module:
        """The target encoder: what the paper evaluates and what ``byol export`` writes (prefix ``target.module.``)."""
        return self.target.module

    def eval_batch(self, batch: tuple[dict[str, Tensor], Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        return batch  # rows arrive preprocessed

    def export_preprocessing(self) -> dict[str, Any]:
        """The fitted tabular preprocessing (column types, statistics, category maps) as JSON."""
        if self.preprocessing is None:
            raise RuntimeError("TJEPA has not been built for a table yet")
        return self.preprocessing

    def embed(self, x: dict[str, Tensor]) -> Tensor:
        """The target encoder's flattened representation ``(B, (R + F) * d)`` of full rows."""
        return self.target(x)

    # ----- training -------------------------------------------------------------------------------
    def training_views(self, batch: tuple[dict[str, Tensor], Tensor]) -> tuple[dict[str, Tensor], FeatureMasks, Tensor]:
        """Draw the masks of a batch on its device: ``(inputs, masks, labels)``."""
        x, labels = batch
        return x, self.masks(len(labels), self.online.num_table_features, labels.device), labels

    def predict_targets(self, x: dict[str, Tensor], masks: FeatureMasks) -> Tensor:
        """Context encoder on the context features, then the predictor: ``(B, M, K_t, d)``."""
        context = self.online.tokens(x, keep=masks.context)
        return self.predictor(context.sequence, masks.context, masks.targets)

    @torch.no_grad()
    def target_tokens(self, x: dict[str, Tensor]) -> Tokens:
        """The target encoder's tokens of the full rows (it sees every feature)."""
        return self.backbone.tokens(x)

    def compute_loss(self, batch: tuple[dict[str, Tensor], FeatureMasks, Tensor]) -> StepOutput:
        x, masks, labels = batch
        full = self.target_tokens(x)
        targets = gather_tokens(full.patches, masks.targets)
        loss = jepa_loss(self.predict_targets(x, masks), targets)
        representation = self.backbone.pool(full)  # the monitors and the probe see the representation that is exported
        return StepOutput(loss, representation, representation, labels)
