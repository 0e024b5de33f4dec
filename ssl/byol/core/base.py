"""The Lightning core shared by every method of the family. Knows no modality and no method."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchmetrics.classification import MulticlassAccuracy

from .checkpoint_io import SafeCheckpointIO
from .monitor import OnlineLinearProbe, embedding_std, rankme
from .optim import OptimizerFactory, param_groups
from .schedules import Constant, LRSchedule, WarmupCosine
from .teacher import EMATeacher

LRScheduleFactory = Callable[[int, int], LRSchedule]
"""Builds the learning-rate multiplier of each step from ``(total_steps, warmup_steps)``; in YAML a
``class_path`` with ``init_args`` (:class:`byol.core.WarmupCosine`, ``final_factor: 1.0`` for a constant rate)."""


class StepOutput(NamedTuple):
    """What :meth:`Method.compute_loss` returns for one training batch."""

    loss: torch.Tensor  # scalar, the method's objective (without the probe's loss)
    features: torch.Tensor  # (B, D) backbone features of one view: the probe's input and RankMe's
    projections: torch.Tensor  # (B, P) what the loss compares, for the collapse monitor
    labels: torch.Tensor  # (B,) labels for the online probe (-1: unlabeled)
    logs: dict[str, torch.Tensor] = {}  # extra scalars to log as train/<name> (loss terms)


class Method(L.LightningModule):
    """Base of every method: views, the training step around :meth:`compute_loss`, teachers, optimisation, monitors.

    A method subclass builds its networks and heads, declares its EMA teachers
    (:class:`EMATeacher` submodules, if any), and writes :meth:`compute_loss`, a
    pure function of a batch of views that runs without a Trainer. Its own
    constructor takes its own arguments and passes the rest (``**kwargs``) here,
    so it never re-lists these. This class owns:

    - **Views**: the batch becomes views on the device (:meth:`training_views`,
      default ``self.views(inputs)``), with the global RNG seeded from
      ``(run seed, batch number, rank)``; evaluation batches go through
      ``self.views.preprocess``. Views with a ``set_epoch`` method are told the
      epoch; views that need statistics of the training inputs
      (``needs_statistics``) get them at the start of fit.
    - **Teachers**: every :class:`EMATeacher` moves once per optimizer step (also
      under gradient accumulation), with its own tau schedule.
    - **The step**: loss, NaN/inf check without host syncs, logs, collapse
      monitors, the online probe on detached features.
    - **Optimisation**: one optimizer over parameter groups (decay; no decay
      for biases and norms; a method may mark groups ``fixed_lr``; the probe with
      its own constant rate), a per-step learning-rate schedule, the linear
      scaling rule.
    - **Checkpoints** written atomically, read with ``weights_only=True``, with
      what rebuilds the backbone for ``byol export``.

    Args:
        optimizer: callable from parameter groups to an optimizer (LightningCLI ``class_path``).
        lr_schedule: learning-rate multiplier per step, built from ``(total_steps, warmup_steps)``;
            default: linear warm-up then cosine to 0.
        warmup_epochs: epochs of linear learning-rate warm-up (fractional allowed).
        weight_decay_end: when set, the weight decay of the decayed parameter groups follows a cosine from the
            optimizer's ``weight_decay`` to this value over the run (DINO: 0.04 -> 0.4; I-JEPA likewise); ``None``
            keeps it constant.
        lr_reference_batch: when set, the optimizer's ``lr`` is the rate for a batch of this many samples and is
            scaled linearly to the effective batch (per device x devices x nodes x accumulation), so a recipe
            keeps its meaning on any number of devices; ``None`` uses ``lr`` as given.
        feature_dim: dimension of the backbone's features, for the probe (given by the method).
        num_classes: classes of the online probe; ``None`` disables it.
        probe_lr: learning rate of the online probe (constant).
        channels_last: store weights and 4-D views in channels-last memory format (faster convolutions on
            tensor-core GPUs).
        compile: ``torch.compile`` the networks (every child module but the views and the probe) in place at the
            start of fit, so checkpoints keep their parameter names; ``True`` for torch's defaults, or a dict of
            options (``{"mode": "max-autotune"}``). The first steps pay the compilation; evaluation runs eager.
    """

    def __init__(
        self,
        optimizer: OptimizerFactory = torch.optim.AdamW,
        lr_schedule: LRScheduleFactory = WarmupCosine,
        warmup_epochs: float = 0.0,
        weight_decay_end: float | None = None,
        lr_reference_batch: int | None = None,
        feature_dim: int | None = None,
        num_classes: int | None = None,
        probe_lr: float = 0.1,
        channels_last: bool = False,
        compile: bool | dict[str, Any] = False,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.weight_decay_end = weight_decay_end
        self.probe_lr = probe_lr
        if lr_reference_batch is not None and lr_reference_batch <= 0:
            raise ValueError(f"lr_reference_batch must be positive, got {lr_reference_batch}")
        self.lr_reference_batch = lr_reference_batch
        self.channels_last = channels_last
        self.compile_options = compile
        self.seed: int | None = None  # the run's seed, fixed at fit start and kept in checkpoints
        self.data_preprocessing: dict[str, Any] | None = None  # a tabular datamodule's, for export
        self._nonfinite: torch.Tensor | None = None  # (step, loss) of the first NaN/inf loss, on the device
        self.probe: OnlineLinearProbe | None = None
        if num_classes is not None:
            if feature_dim is None:
                raise ValueError("feature_dim is needed for the online probe")
            self.probe = OnlineLinearProbe(feature_dim, num_classes)
            self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")

    def finish_setup(self) -> None:
        """Called by a method at the end of its constructor: applies ``channels_last`` to every network."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    # ----- the representation ---------------------------------------------------------------
    @property
    def backbone(self) -> nn.Module:
        """The encoder that is exported: it has ``num_features``, ``export_config()`` and ``export_state_dict()``.
        By default the backbone of the online :class:`~byol.core.heads.Encoder` (``self.online``)."""
        return self.online.backbone

    def encode_views(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features of view 1 (B, D), projections of view 1 and of view 2 (B, P))`` through ``self.online``."""
        f1, z1 = self.online(v1)
        _, z2 = self.online(v2)
        return f1, z1, z2

    def embed(self, x: Any) -> torch.Tensor:
        """Backbone features ``(B, D)`` of an evaluation batch (preprocessed inputs)."""
        return self.backbone(x)

    def export_preprocessing(self) -> dict[str, Any]:
        """What inputs an exported backbone expects: the views' deterministic preprocessing, or for views of
        preprocessed rows (tables) the datamodule's fitted preprocessing, kept at the start of fit."""
        preprocessing = getattr(self.views, "preprocessing", None)
        if preprocessing is not None:
            return preprocessing.export_config()
        if self.data_preprocessing is None:
            raise RuntimeError(f"{type(self.views).__name__} has no preprocessing and no datamodule gave one yet")
        return self.data_preprocessing

    def compute_loss(self, batch: Any) -> StepOutput:
        """The method's objective on a batch of views (what :meth:`training_views` returned). Pure: runs without
        a Trainer, logs nothing; tests and ``make bench`` call it directly."""
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store what rebuilds the backbone without this class: ``byol export`` reads it. Refuses (raises) when
        the loss has gone NaN since the last check, before anything is written."""
        self.raise_if_nonfinite()
        checkpoint["byol"] = {
            "method": type(self).__name__,
            "seed": self.seed,
            "backbone": self.backbone.export_config(),
            "backbone_prefix": self._backbone_prefix(),
            "preprocessing": self.export_preprocessing(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.seed = checkpoint.get("byol", {}).get("seed", self.seed)

    def _backbone_prefix(self) -> str:
        for name, module in self.named_modules():
            if module is self.backbone:
                return name + "."
        raise RuntimeError("the backbone is not a submodule of the method")

    # ----- batches and randomness -----------------------------------------------------------
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: training batches become views (:meth:`training_views`), others :meth:`eval_batch`.

        Before a training batch's views are drawn, the global RNG is seeded from
        ``(run seed, batch number, rank)``: the views of a batch do not depend on
        what ran before it (a resumed run draws exactly the views of an
        uninterrupted one) and differ between DDP ranks.
        """
        if self.trainer is not None and self.trainer.training:
            torch.manual_seed(self._batch_seed())
            return self.training_views(batch)
        return self.eval_batch(batch)

    def training_views(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``(inputs, labels)`` -> ``(*self.views(inputs), labels)`` on the device, e.g. ``(view1, view2, labels)``."""
        inputs, labels = batch
        return (*(self._format(v) for v in self.views(inputs)), labels)

    def eval_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)`` -> ``(self.views.preprocess(inputs), labels)`` for :meth:`embed`."""
        inputs, labels = batch
        return self._format(self.views.preprocess(inputs)), labels

    def _format(self, x: Any) -> Any:
        """4-D image views in channels-last memory when asked; anything else (audio, table rows) as is."""
        if self.channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def on_train_epoch_start(self) -> None:
        set_epoch = getattr(getattr(self, "views", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.current_epoch)

    def setup(self, stage: str) -> None:
        """Write and read checkpoints with :class:`SafeCheckpointIO` unless a custom plugin was configured."""
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = SafeCheckpointIO()

    def on_fit_start(self) -> None:
        if self.seed is None:
            self.seed = torch.initial_seed() % 2**63
        self.print(self.batch_and_lr_summary())  # rank zero only
        preprocessing = getattr(self.trainer.datamodule, "preprocessing", None)
        if preprocessing is not None:  # a tabular datamodule's fitted preprocessing (export needs it)
            self.data_preprocessing = preprocessing.export_config()
        if getattr(getattr(self, "views", None), "needs_statistics", False):
            self._fit_view_statistics()
        if self.compile_options is not False:
            options = {} if self.compile_options is True else dict(self.compile_options)
            for name, module in self.named_children():
                if name not in ("views", "probe", "val_top1"):
                    module.compile(**options)

    @torch.no_grad()
    def _fit_view_statistics(self) -> None:
        """Give the views statistics of ``views.statistics_samples`` random training inputs (BYOL-A v2's
        dataset pre-normalisation): each rank sums ``views.statistics_moments`` over its share, the ranks' sums
        are added, and ``views.set_statistics`` gets the total."""
        self.trainer.fit_loop.setup_data()  # a no-op once the loop has its loader
        loader = self.trainer.train_dataloader
        dataset = loader.dataset
        chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        chosen = chosen[: self.views.statistics_samples]
        shard = chosen[self.global_rank :: self.trainer.world_size].tolist()
        moments = None
        for inputs, _ in DataLoader(Subset(dataset, shard), batch_size=loader.batch_size, num_workers=loader.num_workers):
            batch = self.views.statistics_moments(inputs.to(self.device))
            moments = batch if moments is None else moments + batch
        moments = self.trainer.strategy.reduce(moments, reduce_op="sum")
        self.print(self.views.set_statistics(moments, len(chosen)))

    def effective_batch(self) -> tuple[int, int, int, int] | None:
        """``(per device, devices, nodes, accumulation)``; their product is the batch of one optimizer step.

        ``None`` when the training loader has no ``batch_size``.
        """
        trainer = self.trainer
        trainer.fit_loop.setup_data()  # a no-op once the training loader is set up
        loader = trainer.train_dataloader
        per_device = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
        if per_device is None:
            return None
        return per_device, trainer.num_devices, trainer.num_nodes, trainer.accumulate_grad_batches

    def batch_and_lr_summary(self) -> str:
        """One line: the effective batch (per device x devices x nodes x accumulation) and the peak learning rate
        of the first parameter group, with the linear scaling that made it when ``lr_reference_batch`` is set."""
        parts = self.effective_batch()
        if parts is None:
            return "effective batch unknown (the training loader has no batch_size)"
        per_device, devices, nodes, accumulate = parts
        batch = math.prod(parts)
        group = self.trainer.optimizers[0].param_groups[0] if self.trainer.optimizers else {}
        lr = group.get("initial_lr", group.get("lr"))
        if lr is None:
            lr_text = "lr unknown"
        elif self.lr_reference_batch:
            lr_text = f"lr {lr:g} = {lr * self.lr_reference_batch / batch:g} x {batch}/{self.lr_reference_batch}"
        else:
            lr_text = f"lr {lr:g} (as configured; set lr_reference_batch to scale it with the batch)"
        return (
            f"effective batch {batch} = {per_device} per device x {devices} device{'s' * (devices != 1)} x "
            f"{nodes} node{'s' * (nodes != 1)} x {accumulate} accumulation; {lr_text}"
        )

    def _batch_seed(self) -> int:
        batch_number = self.trainer.fit_loop.epoch_loop.batch_progress.total.ready
        key = f"{self.seed}/{batch_number}/{self.global_rank}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % 2**63

    # ----- target update --------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run (the length of the tau and lr schedules)."""
        return max(int(self.trainer.estimated_stepping_batches), 1)

    def teachers(self) -> Iterator[tuple[str, EMATeacher]]:
        """The method's EMA teachers with their attribute names (none for SimSiam, Barlow Twins, VICReg)."""
        return ((name, m) for name, m in self.named_modules() if isinstance(m, EMATeacher))

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        if self.weight_decay_end is not None:
            self._schedule_weight_decay(self.trainer.optimizers[0])
        super().optimizer_step(*args, **kwargs)
        # Lightning calls this once per optimizer step; global_step counts the steps completed before it.
        logging = self.on_logging_step()  # self.log copies a Python number to the device, and that copy waits
        for name, teacher in self.teachers():
            tau = teacher.update(self.trainer.global_step, self.total_steps)
            if logging:
                self.log("train/tau" if name == "target" else f"train/tau_{name}", tau, on_step=True, on_epoch=False)
        if logging:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    # ----- the step ---------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        out = self.compute_loss(batch)
        self.check_finite(out.loss)
        self.log_loss(out.loss, len(out.labels))
        for name, value in out.logs.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False)
        self.log_monitors(out.features.detach(), out.projections.detach())
        return out.loss + self.probe_loss(out.features, out.labels)

    # ----- monitoring -------------------------------------------------------------------------
    def on_logging_step(self) -> bool:
        """Whether Lightning sends this training step's ``on_step`` values to the loggers (every
        ``trainer.log_every_n_steps``): costly monitors and host-device syncs happen on these steps only. Never
        without a Trainer (a step called by hand logs nothing)."""
        return self._trainer is not None and self.trainer._logger_connector.should_update_logs

    def log_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Log the training loss per step and per epoch (the epoch mean weighs steps by ``batch_size`` samples).
        The progress bar shows the epoch mean only: Lightning reads every progress-bar value of a step back to the
        host at the end of that step, which stalls a GPU."""
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, logger=False, batch_size=batch_size)

    def log_monitors(self, embeddings: torch.Tensor, projections: torch.Tensor) -> None:
        """Log label-free collapse signals of one view, ``(B, D)`` embeddings and ``(B, P)`` projections, on
        logging steps (RankMe's SVD is not free)."""
        if not self.on_logging_step():
            return
        self.log("train/proj_std", embedding_std(projections), on_step=True, on_epoch=False)
        self.log("train/rankme", rankme(embeddings), on_step=True, on_epoch=False)

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop with a ``FloatingPointError`` once the training loss is NaN or infinite.

        Reading the loss on the host every step would stall an accelerator (a host-device sync per step), so the
        first bad step is recorded on the device and read on logging steps, at the end of each epoch and before
        any checkpoint is written, so a checkpoint of diverged weights never replaces a good one. On the CPU it
        is read at once.
        """
        loss = loss.detach().float()
        # new_full fills on the device; new_tensor would copy from the host, which waits for the device
        if self._nonfinite is None:
            self._nonfinite = torch.stack([loss.new_full((), -1.0), loss.new_zeros(())])  # step -1: none yet
        first = ~torch.isfinite(loss) & (self._nonfinite[0] < 0)
        record = torch.stack([loss.new_full((), float(self.global_step)), loss])
        self._nonfinite = torch.where(first, record, self._nonfinite)
        if self._read_loss_now(loss):
            self.raise_if_nonfinite()

    def _read_loss_now(self, loss: torch.Tensor) -> bool:
        return loss.device.type == "cpu" or self.on_logging_step()

    def raise_if_nonfinite(self) -> None:
        """Raise if :meth:`check_finite` has recorded a NaN or infinite loss (a host-device sync)."""
        if self._nonfinite is not None and self._nonfinite[0].item() >= 0:
            step, value = self._nonfinite.tolist()
            raise FloatingPointError(f"{type(self).__name__} loss is {value} at step {int(step)}; {self.nonfinite_hint}")

    def on_train_epoch_end(self) -> None:
        self.raise_if_nonfinite()

    nonfinite_hint = "lower the learning rate or check the inputs"
    """What the error of a NaN or infinite loss suggests (see :meth:`check_finite`)."""

    def probe_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Online-probe loss on detached ``(B, D)`` features (0 when the probe is off)."""
        if self.probe is None:
            return features.new_zeros(())
        loss, logits = self.probe(features, labels)
        labeled = labels >= 0  # accuracy over the labeled samples (0 for a batch without any), no host sync
        acc = ((logits.argmax(1) == labels) & labeled).sum() / labeled.sum().clamp(min=1)
        self.log("train/probe_acc", acc, on_step=True, on_epoch=True, batch_size=len(labels))
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
    def parameter_groups(self) -> list[dict[str, Any]]:
        """The method's trainable parameters (the probe's and frozen teachers' excluded): weights with decay,
        biases and norms without. A method may split off groups with their own options; a group with
        ``fixed_lr: True`` keeps its (linearly scaled) rate through training, as SimSiam's predictor."""
        return param_groups(self, exclude=("probe.",))

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.parameter_groups()
        schedule = self.lr_schedule(self.total_steps, self._warmup_steps())
        lambdas: list = [Constant() if g.get("fixed_lr") else schedule for g in groups]
        method_groups = len(groups)
        if self.probe is not None:
            groups.append({"params": list(self.probe.parameters()), "lr": self.probe_lr, "weight_decay": 0.0})
            lambdas.append(Constant())
        optimizer = self.optimizer_factory(groups)
        if self.lr_reference_batch:
            self._scale_lr(optimizer.param_groups[:method_groups])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _schedule_weight_decay(self, optimizer: torch.optim.Optimizer) -> None:
        """Set each decayed group's weight decay for this step: a cosine from its initial value (kept as
        ``initial_weight_decay``) at step 0 to ``weight_decay_end`` at the last step."""
        progress = min(self.trainer.global_step / self.total_steps, 1.0)
        for group in optimizer.param_groups:
            start = group.setdefault("initial_weight_decay", group.get("weight_decay", 0.0))
            if start > 0:  # groups without decay (biases, norms, the probe) keep none
                end = self.weight_decay_end
                group["weight_decay"] = end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))

    def _scale_lr(self, groups: list[dict]) -> None:
        """Linear scaling rule (Goyal et al. 2017; BYOL's ``0.2 x batch/256``): ``lr x batch / lr_reference_batch``."""
        parts = self.effective_batch()
        if parts is None:
            raise ValueError("lr_reference_batch is set but the training loader has no batch_size to scale with")
        batch = math.prod(parts)
        for group in groups:
            group["lr"] *= batch / self.lr_reference_batch

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
