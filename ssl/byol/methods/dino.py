"""DINO (Caron et al. 2021): a student matches, on every crop, the centred and sharpened softmax of an EMA teacher
that sees the global crops only; with DINOv2's options (Oquab et al. 2023): the masked-patch iBOT loss, the KoLeo
regulariser and Sinkhorn-Knopp centring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.base import Method, StepOutput
from ..core.heads import DINOHead, Encoder
from ..core.schedules import CosineTau, TauSchedule
from ..core.teacher import EMATeacher
from ..losses.dino import DINOCentering, TeacherCentering, TeacherTemperature, dino_loss, koleo_loss
from ..views.patch_masks import MaskedPatches, RandomPatchMasks

HeadFactory = Callable[[int], DINOHead]
"""Builds the head from the backbone's feature dimension; in YAML a ``class_path`` with ``init_args``."""

CenteringFactory = Callable[[int], TeacherCentering]
"""Builds the teacher's centring from the head's output dimension ``K`` (:class:`DINOCentering`, or
``SinkhornKnoppCentering``, which ignores ``K``)."""


def masked_patch_loss(
    student_logits: Tensor, teacher_probs: Tensor, weight: Tensor, num_images: int, student_temp: float = 0.1
) -> Tensor:
    """iBOT's loss on gathered masked patches: ``-sum_m weight_m sum_k q_mk log softmax(s_m / T)_k / num_images``.

    The gathered form of :func:`byol.losses.dino.ibot_patch_loss` (equal to it when ``weight`` is ``1 / (masked
    patches of the image)``): the head runs on the ``M`` masked patches only, not on all ``B x N``.

    Args:
        student_logits: ``(M, K)`` student head outputs of the masked patches.
        teacher_probs: ``(M, K)`` teacher targets of the same patches (unmasked input).
        weight: ``(M,)`` per-patch weights.
        num_images: the images the masks were drawn for (masked or not), the loss's denominator.
    """
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1)
        cross_entropy = -(teacher_probs.detach().float() * log_p).sum(-1)  # (M,)
        return (cross_entropy * weight).sum() / num_images


class DINO(Method):
    """DINO on any modality whose views make multi-crops (:class:`byol.views.DINOImageViews`,
    :class:`byol.views.DINOAudioViews`): ``views(inputs)`` gives ``G`` global and ``L`` local crops, crop-major.

    The student (backbone + :class:`DINOHead`) sees every crop, one backbone call per crop size; the teacher, an EMA
    of the student, sees the global crops. The loss is the cross-entropy from the teacher's centred, sharpened
    softmax to the student's, over every (teacher crop, student crop) pair of different crops. The centre moves
    after each step with the teacher's mean logits over the global batch. During the first
    ``freeze_last_layer_epochs`` the gradient of the head's last layer is dropped (it stays at its
    initialisation), which the paper found stabilises the start. What is exported and evaluated is the
    **teacher's** backbone, as in the paper.

    DINOv2's options: ``patch_masks`` turns on the iBOT masked-patch loss (ViT backbones with the token interface):
    the student's global crops have some patches replaced by a learned mask token, and the shared head's outputs
    at those patches match the teacher's on the unmasked crops (centred by a second centring of the same kind);
    ``koleo_weight`` adds the KoLeo regulariser on the student's global-crop features; ``centering`` chooses DINO's
    running centre or Sinkhorn-Knopp.

    Args:
        backbone: maps crops ``(N, ...)`` of either size to ``(N, D)`` features, ``num_features = D`` (a ViT needs
            ``dynamic_img_size: true`` in its ``model_kwargs`` for local crops of another size).
        views: makes :class:`~byol.views.multi_crop.MultiCrops` of a raw batch on the device, and ``preprocess``.
        head: builds the head from ``D``; default :class:`DINOHead` with the paper's sizes (65536 outputs).
        centering: builds the teacher's centring from ``K``; default DINO's, momentum 0.9.
        teacher_temp: the teacher's temperature per (fractional) epoch; default 0.04 throughout.
        student_temp: the student's temperature (0.1).
        tau_schedule: the teacher's EMA decay; ``None``: the paper's cosine from 0.996 to 1.
        freeze_last_layer_epochs: epochs during which the head's last layer does not move (1).
        koleo_weight: weight of the KoLeo term on each global crop's student features (DINOv2: 0.1; 0: off).
        patch_masks: iBOT's masks (``RandomPatchMasks``); ``None``: no patch loss.
        patch_loss_weight: weight of the patch loss (DINOv2: 1.0).
        kwargs: optimisation, probe and speed options of :class:`byol.core.Method` (``optimizer``,
            ``lr_schedule``, ``warmup_epochs``, ``weight_decay_end``, ``lr_reference_batch``, ``num_classes``, ...).
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: nn.Module,
        head: HeadFactory = DINOHead,
        centering: CenteringFactory = DINOCentering,
        teacher_temp: TeacherTemperature | None = None,
        student_temp: float = 0.1,
        tau_schedule: TauSchedule | None = None,
        freeze_last_layer_epochs: float = 1.0,
        koleo_weight: float = 0.0,
        patch_masks: RandomPatchMasks | None = None,
        patch_loss_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_dim=backbone.num_features, **kwargs)
        self.online = Encoder(backbone, head(backbone.num_features))
        self.target = EMATeacher(self.online, tau_schedule if tau_schedule is not None else CosineTau(base=0.996))
        out_dim = self.online.projector.out_dim
        self.centering = centering(out_dim)
        self.teacher_temp = teacher_temp if teacher_temp is not None else TeacherTemperature()
        self.student_temp = student_temp
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self.koleo_weight = koleo_weight
        self.patch_masks = patch_masks
        self.patch_loss_weight = patch_loss_weight
        if patch_masks is not None:
            if not hasattr(backbone, "tokens"):
                raise TypeError(f"patch_masks (iBOT) need a backbone with tokens (a ViT); {type(backbone).__name__} has none")
            self.mask_token = nn.Parameter(torch.zeros(backbone.num_features))
            self.patch_centering = centering(out_dim)
        self.views = views
        self.finish_setup()

    @property
    def backbone(self) -> nn.Module:
        """The teacher's backbone: what the paper evaluates and what ``byol export`` writes."""
        return self.target.module.backbone

    def epoch_progress(self) -> float:
        """The (fractional) training epoch of this step, for the teacher temperature; 0 without a Trainer."""
        if self._trainer is None or not self.trainer.max_epochs or self.trainer.max_epochs < 0:
            return float(self.current_epoch)
        return self.trainer.global_step * self.trainer.max_epochs / self.total_steps

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the last layer's gradient during the first ``freeze_last_layer_epochs`` (no update, no decay)."""
        if self.epoch_progress() < self.freeze_last_layer_epochs:
            for p in self.online.projector.last_layer.parameters():
                p.grad = None

    # ----- the step -------------------------------------------------------------------------------------------
    def compute_loss(self, batch: tuple[Tensor, Tensor, Tensor]) -> StepOutput:
        global_crops, local_crops, labels = batch
        b = len(labels)
        g, l = len(global_crops) // b, len(local_crops) // b
        student, teacher = self.online, self.target.module
        masks = self._draw_masks(global_crops) if self.patch_masks is not None else None
        if masks is None:
            global_features = student.backbone(global_crops)
        else:
            student_tokens = student.backbone.tokens(global_crops, mask=masks.mask, mask_token=self.mask_token)
            global_features = student.backbone.pool(student_tokens)
        features = [global_features] + ([student.backbone(local_crops)] if l else [])
        student_logits = student.projector(torch.cat(features))  # (S * B, K), crop-major
        temperature = self.teacher_temp(self.epoch_progress())
        with torch.no_grad():
            if masks is None:
                teacher_features = teacher.backbone(global_crops)
            else:
                teacher_tokens = teacher.backbone.tokens(global_crops)
                teacher_features = teacher.backbone.pool(teacher_tokens)
            teacher_logits = teacher.projector(teacher_features)  # (G * B, K)
            targets = self.centering(teacher_logits, temperature)
        loss = dino_loss(student_logits, targets, g + l, g, self.student_temp)
        logs = {"dino": loss.detach(), **self.target_entropies(targets)}
        self.centering.update(teacher_logits)
        if masks is not None:
            patch = self._patch_loss(student_tokens.patches, teacher_tokens.patches, masks, temperature)
            loss = loss + self.patch_loss_weight * patch
            logs["ibot"] = patch.detach()
        if self.koleo_weight > 0:
            koleo = sum(koleo_loss(crop) for crop in global_features.chunk(g))
            loss = loss + self.koleo_weight * koleo
            logs["koleo"] = koleo.detach()
        return StepOutput(loss, teacher_features[:b], teacher_logits[:b], labels, logs)

    @staticmethod
    @torch.no_grad()
    def target_entropies(targets: Tensor) -> dict[str, Tensor]:
        """The two collapse signals of DINO's targets ``(N, K)``: ``teacher_entropy``, the mean entropy of a row
        (0 when every target is one-hot), and ``teacher_batch_entropy``, the entropy of the batch's mean target
        (0 when every row picks the same prototype). Both near ``log K``: uniform collapse, the failure that
        centring alone drives towards; healthy training keeps the first well below the second."""
        p = targets.float()
        mean = p.mean(0)
        return {"teacher_entropy": -(p * p.clamp_min(1e-12).log()).sum(-1).mean(),
                "teacher_batch_entropy": -(mean * mean.clamp_min(1e-12).log()).sum()}

    def _draw_masks(self, global_crops: Tensor) -> MaskedPatches:
        grid = self.online.backbone.grid_size(*global_crops.shape[-2:])
        return self.patch_masks(len(global_crops), grid[0] * grid[1], global_crops.device)

    def _patch_loss(self, student: Tensor, teacher: Tensor, masks: MaskedPatches, temperature: float) -> Tensor:
        """The iBOT term on the masked patches: student ``(G * B, N, d)`` tokens of the masked crops, teacher
        tokens of the same crops unmasked; the head runs on the ``M`` masked patches only."""
        student_logits = self.online.projector(student.flatten(0, 1).index_select(0, masks.index))
        with torch.no_grad():
            teacher_logits = self.target.module.projector(teacher.flatten(0, 1).index_select(0, masks.index))
            targets = self.patch_centering(teacher_logits, temperature)
        self.patch_centering.update(teacher_logits)
        return masked_patch_loss(student_logits, targets, masks.weight, len(masks.mask), self.student_temp)
