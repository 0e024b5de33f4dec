"""What a JEPA student regresses: the target encoder's tokens at every position, under one interface.

A target option is a small module, ``target(encoder, x, final=None) -> (B, N, d)``: it runs the (EMA) target
encoder on the whole input (or reads ``final``, the encoder's output tokens the method already has), under ``torch.no_grad()`` and in whatever mode the encoder is in, and returns one token per input
position (image patches in row-major order, log-mel patches, table features), the prefix tokens (CLS, registers,
[REG]) dropped. The method picks the target positions out of it and regresses them with an L2 loss.

- :class:`LastLayer`: the final (normed) output tokens, layer-normalised again (I-JEPA, Assran et al. 2023).
- :class:`TopLayersAverage`: the average of the top blocks' outputs, each instance-normalised over the positions,
  then layer-normalised (data2vec 2.0, Baevski et al. 2023).
- :class:`BatchStandardized`: the final tokens standardised per position and channel over the global batch
  (against the collapse of targets that are mostly a constant per position, as T-JEPA's on tables).

Where the targets come from over training is the teacher's business, not the target's: :class:`StagedTau` is the
EMA decay schedule that turns the teacher into dBOT's staged, frozen teacher (Liu et al. 2022).

Encoders: any with the token interface of :mod:`byol.models.tokens` (``tokens``, and ``layer_tokens`` for
:class:`TopLayersAverage`): :class:`~byol.models.TimmBackbone` ViTs and
:class:`~byol.models.TabularTransformer`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.distributed import all_sum
from ..core.schedules import TauSchedule
from ..models.tokens import Tokens


class JEPATarget(nn.Module):
    """A JEPA target option: ``forward(encoder, x, final=None) -> (B, N, d)`` target tokens at every position,
    without gradient.

    ``encoder`` is the target encoder (for a method with a teacher, the teacher's copy); ``x`` its input, whole
    (every position). The result has the patches only (no prefix tokens), in position order. A target has no
    parameters and does not change the encoder's mode.
    """

    def forward(self, encoder: nn.Module, x: Any, final: Tokens | None = None) -> Tensor:
        """``(B, N, d)`` targets of ``x`` under ``encoder``; ``final`` is ``encoder.tokens(x)`` when the caller has it."""
        raise NotImplementedError


class LastLayer(JEPATarget):
    """The encoder's output tokens (after its final norm), then a LayerNorm without affine parameters over the
    channels: I-JEPA's target (``F.layer_norm(h, (h.size(-1),))`` on the target encoder's normed output in the
    reference's ``train.py``; its ViT has no CLS token, so every output is a patch).

    Args:
        layer_norm: normalise each token over its ``d`` channels (zero mean, unit variance, eps ``1e-5``); False
            returns ``encoder.tokens(x).patches`` as they are.

    Returns from ``forward``: ``(B, N, d)``; float32 when normalised (the norm is computed in float32).
    """

    def __init__(self, layer_norm: bool = True) -> None:
        super().__init__()
        self.layer_norm = layer_norm

    @torch.no_grad()
    def forward(self, encoder: nn.Module, x: Any, final: Tokens | None = None) -> Tensor:
        h = (encoder.tokens(x) if final is None else final).patches  # (B, N, d)
        if self.layer_norm:
            h = F.layer_norm(h.float(), h.shape[-1:])
        return h

    def extra_repr(self) -> str:
        return f"layer_norm={self.layer_norm}"


class TopLayersAverage(JEPATarget):
    """data2vec 2.0's target (Baevski et al. 2023): the top ``layers`` blocks' outputs, each instance-normalised,
    averaged, then layer-normalised.

    For each of the top ``k = layers`` blocks (before the final norm, from ``encoder.layer_tokens(x, k)``), the
    prefix tokens are dropped and every channel of every sample is normalised over the ``N`` positions,
    ``(h - mean_N) / sqrt(var_N + 1e-5)`` (``F.instance_norm`` on ``(B, d, N)``, biased variance); the ``k`` results
    are averaged and, with ``layer_norm``, each token is normalised over its ``d`` channels (eps ``1e-5``, no
    affine parameters). As in fairseq's ``Data2VecMultiModel.make_targets``: prefix (``num_extra_tokens``, the
    CLS) removed before the instance norm, norms in float32; its image recipe averages the top 10 of 12 blocks
    with ``instance_norm_target_layer`` and ``layer_norm_targets``, its audio recipe the top 8 without the final
    layer norm (``layer_norm=False`` here).

    NOTE: data2vec averages each block's feed-forward output *before* the block's last residual connection (its
    post-norm blocks' ``ffn_targets``); here a block's output is the residual stream after the block, which is
    what a pre-norm timm or tabular block exposes without hooks into its internals.

    Args:
        layers: ``k``, how many top blocks to average (1 .. the encoder's depth).
        instance_norm: normalise each block's output over the positions before averaging.
        layer_norm: normalise the average over the channels.

    Returns from ``forward``: ``(B, N, d)`` float32.
    """

    def __init__(self, layers: int = 8, instance_norm: bool = True, layer_norm: bool = True) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.layers, self.instance_norm, self.layer_norm = layers, instance_norm, layer_norm

    @torch.no_grad()
    def forward(self, encoder: nn.Module, x: Any, final: Tokens | None = None) -> Tensor:
        total = None
        for out in encoder.layer_tokens(x, self.layers):
            h = out.patches.float()  # (B, N, d), prefix dropped before the statistics
            if self.instance_norm:
                h = F.instance_norm(h.transpose(1, 2)).transpose(1, 2)
            total = h if total is None else total + h
        y = total / self.layers
        if self.layer_norm:
            y = F.layer_norm(y, y.shape[-1:])
        return y

    def extra_repr(self) -> str:
        return f"layers={self.layers}, instance_norm={self.instance_norm}, layer_norm={self.layer_norm}"


class BatchStandardized(JEPATarget):
    """The encoder's output tokens, each position's each channel standardised over the **global** batch:
    ``(h - mean_B) / std_B`` (biased, ``eps`` added to the variance; the sums all-reduced under DDP).

    Where the tokens are mostly a constant per position (T-JEPA's tables: the fixed feature-index encodings are
    about 98% of a target token, the row-dependent part about 13% of its size), a plain L2 loss is minimised by
    shrinking the row-dependent part, a collapse that a falling loss hides (JEPA logs ``target_std`` and
    ``loss_over_variance`` to show it). Standardising over the batch removes the constant and gives every
    position the same spread, so shrinking no longer pays: on California and breast cancer it kept the targets'
    spread and RankMe from falling, where the last layer as it is lost both. It did not improve the downstream
    MLP on California (0.4918 against 0.4791 on one seed), so it is an option, not the default.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    @torch.no_grad()
    def forward(self, encoder: nn.Module, x: Any, final: Tokens | None = None) -> Tensor:
        h = (encoder.tokens(x) if final is None else final).patches.float()  # (B, N, d)
        moments = all_sum(torch.cat([h.sum(0, keepdim=True), h.square().sum(0, keepdim=True),
                                     h.new_full((1, *h.shape[1:]), float(len(h)))]))  # (3, N, d)
        mean, count = moments[0] / moments[2], moments[2]
        variance = (moments[1] / count - mean.square()).clamp_min(0)
        return (h - mean) / (variance + self.eps).sqrt()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class StagedTau(TauSchedule):
    """dBOT's multi-stage distillation with bootstrapped teachers (Liu et al. 2022, "Exploring Target
    Representations for Masked Autoencoders") as an EMA decay schedule for an
    :class:`~byol.core.teacher.EMATeacher`.

    Training is split into ``stages`` equal stages of optimizer steps (step ``s`` of ``T`` is in stage
    ``s * stages // T``). ``tau`` is 1 (the target stays as it is) at every step except the last step of each stage
    but the final one, where it is 0: that update copies the student into the target. The teacher starts as a copy
    of the student at initialisation, so stage 1 distils from a random encoder, and stage ``k`` from the student as
    it was at the end of stage ``k - 1``, frozen for the whole stage. The base calls ``teacher.update(step, T)``
    after every optimizer step with the number of steps completed before it (``0 .. T - 1``), so a schedule that
    is a pure function of the step resumes exactly. Steps past ``T`` keep the target frozen.

    As dBOT's code (``main_pretrain.py``): the teacher is frozen within a stage (no EMA) and replaced by the
    student's weights at each stage boundary; the first teacher is the randomly initialised network. Buffers follow
    the framework's policy (:mod:`byol.core.ema`: copied from the student at every update); ViTs and the tabular
    transformer have only constant buffers.

    NOTE: not implemented here: dBOT also **re-initialises the student** at each stage boundary
    (``model.initialize_weights()`` after the teacher takes its weights) and restarts the learning-rate warm-up and
    cosine for each stage (``util/lr_sched.py``; the AdamW state carries over). With this schedule alone the student
    keeps training from its own weights, so it is dBOT's bootstrapped, frozen-per-stage target without the
    restarts; both would need a hook in the training loop (and a per-stage ``lr_schedule``), not a tau schedule.

    Args:
        stages: number of stages (1: distil from the random initial encoder for the whole run).
    """

    def __init__(self, stages: int) -> None:
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        self.stages = stages

    def stage(self, step: int, total_steps: int) -> int:
        """The 0-based stage of optimizer step ``step`` in a run of ``total_steps``."""
        return step * self.stages // max(total_steps, 1)

    def __call__(self, step: int, total_steps: int) -> float:
        last_of_stage = self.stage(step + 1, total_steps) != self.stage(step, total_steps)
        return 0.0 if last_of_stage and step + 1 < total_steps else 1.0

    def __repr__(self) -> str:
        return f"StagedTau(stages={self.stages})"
