"""T-JEPA (Thimonier et al. 2024): the JEPA on a table's features, its networks built for the table at fit start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from torchmetrics.classification import MulticlassAccuracy

from ..core.monitor import OnlineLinearProbe
from ..core.schedules import TauSchedule
from ..losses.jepa import jepa_loss
from ..models.tabular import TabularTransformer, TJEPAPredictor
from ..views.tabular_masks import TabularMasks
from .jepa import JEPA, PredictorFactory
from .jepa_targets import JEPATarget, LastLayer

__all__ = ["TJEPA", "jepa_loss"]

EncoderFactory = Callable[[int, list[int]], TabularTransformer]
"""Builds the encoder for a table from ``(num_numeric, cardinalities)``; in YAML a ``class_path`` with ``init_args``."""


class TJEPA(JEPA):
    """T-JEPA: :class:`~byol.methods.jepa.JEPA` with T-JEPA's feature masks on the tabular transformer.

    The context encoder sees a subset of a row's features, the predictor predicts the target encoder's tokens of
    disjoint target subsets, the target encoder (an EMA of the context encoder) sees the whole row. The networks
    depend on the table (feature count, category cardinalities), which only the fitted preprocessing of the
    datamodule knows: they are built in :meth:`configure_model` from ``trainer.datamodule.preprocessing`` (a
    :class:`byol.data.tabular.TabularDataModule`), or by :meth:`build`. Lightning calls ``configure_model``
    before it sets up the optimizer and before it restores a checkpoint, so neither sees a half-built model;
    ``TJEPA.load_from_checkpoint`` rebuilds them from the checkpoint's metadata. Parameter names are those of
    every earlier T-JEPA checkpoint (``online.*``, ``target.module.*``, ``predictor.*``).

    The exported backbone is the **target** encoder (the paper evaluates it), with the datamodule's preprocessing.

    Args:
        encoder: builds the encoder from ``(num_numeric, cardinalities)``
            (:class:`byol.models.tabular.TabularTransformer` and its hyper-parameters).
        predictor: builds the predictor from ``((1, F), d, R)`` (:class:`byol.models.tabular.TJEPAPredictor`).
        masks: context/target mask sampler; ``None``: :class:`TabularMasks` with its defaults.
        targets: what the student regresses; ``None``: the target encoder's last layer as it is (T-JEPA's
            reference; ``LastLayer(layer_norm=True)`` normalises it as I-JEPA does).
        tau_schedule: EMA decay; ``None``: the paper's linear 0.996 -> 1.
        num_classes: classes of the online probe on the target's flattened representation; ``"auto"``: the table's
            classes for a classification target, no probe otherwise; ``None``: no probe.
        kwargs: optimisation options of :class:`byol.core.Method` (``optimizer``, ``lr_schedule``,
            ``warmup_epochs``, ``lr_reference_batch``, ``probe_lr``).
    """

    def __init__(
        self,
        encoder: EncoderFactory = TabularTransformer,
        predictor: PredictorFactory = TJEPAPredictor,
        masks: TabularMasks | None = None,
        targets: JEPATarget | None = None,
        tau_schedule: TauSchedule | None = None,
        num_classes: int | Literal["auto"] | None = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(None, None, masks if masks is not None else TabularMasks(), predictor,
                         targets if targets is not None else LastLayer(layer_norm=False), tau_schedule, **kwargs)
        self.encoder_factory = encoder
        self.num_classes = num_classes  # the probe is built with the networks, in build()
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
        self.build_networks(encoder)
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
            meta = checkpoint.get("byol")
            if meta is None or "backbone" not in meta:
                raise ValueError("this checkpoint has no 'byol' metadata to rebuild T-JEPA's networks from; "
                                 "it was not written by byol fit")
            probe = checkpoint["state_dict"].get("probe.linear.weight")
            self.build(meta["backbone"]["num_numeric"], meta["backbone"]["cardinalities"], meta["preprocessing"],
                       None if probe is None else probe.shape[0])

    def export_preprocessing(self) -> dict[str, Any]:
        """The fitted tabular preprocessing (column types, statistics, category maps) as JSON."""
        if self.preprocessing is None:
            raise RuntimeError("TJEPA has not been built for a table yet")
        return self.preprocessing
