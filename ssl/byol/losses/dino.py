"""DINO (Caron et al. 2021) and DINOv2 (Oquab et al. 2023): a student matches the sharpened, centred softmax of
an EMA teacher across crops; DINOv2 adds a patch-level iBOT term, Sinkhorn-Knopp centring and the KoLeo spread.

Layout: multi-crop tensors are **crop-major**: rows ``[i * B:(i + 1) * B]`` hold crop ``i`` of every sample of this
rank's batch, the ``G`` global crops first. The teacher sees the global crops only, so teacher crop ``t`` and
student crop ``t`` (``t < G``) are the same view and are not paired.

Constants (the papers' and the reference code's, ``facebookresearch/dino`` ``main_dino.py`` and
``facebookresearch/dinov2`` ``dinov2/loss/``, ``dinov2/configs/ssl_default_config.yaml``): student temperature
0.1; centre momentum 0.9; teacher temperature 0.04 (DINO's default), warmed up linearly 0.04 -> 0.07 over the first
30 epochs in the DINO paper's ViT recipe and in DINOv2's default config; 3 Sinkhorn-Knopp iterations; KoLeo weight
0.1 (DINOv2's ``dino.koleo_loss_weight``, applied to each global crop's class tokens and summed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.distributed import all_sum, gather


def _full_precision(x: torch.Tensor) -> torch.autocast:
    """Autocast off: the contractions below run over ``B * K`` terms (or pick nearest neighbours) in float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def dino_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    num_student_crops: int,
    num_teacher_crops: int,
    student_temp: float = 0.1,
) -> torch.Tensor:
    """DINO's multi-crop cross-entropy, averaged over the pairs of different crops.

    For each teacher crop ``t`` and each student crop ``s != t``:
    ``mean_b -sum_k q_t[b, k] log softmax(student_s[b] / student_temp)_k``; the result is the mean over the
    ``G * (S - 1)`` pairs (DINO's ``total_loss / n_loss_terms``; DINOv2's sum of its global and local terms over
    ``n_global_crops_loss_terms + n_local_crops_loss_terms`` is the same number). ``teacher_probs`` is detached.

    The loss of each sample is its own: no reduction across ranks is needed. With ``B`` samples on every rank,
    the mean over ranks (what DDP's gradient averaging optimises) is the loss of the global batch.

    Args:
        student_logits: ``(S * B, K)`` student head outputs, crop-major, the ``G`` global crops first.
        teacher_probs: ``(G * B, K)`` teacher target probabilities (a :class:`TeacherCentering`'s output),
            crop-major; each row sums to 1.
        num_student_crops: ``S`` (DINO: 2 global + 10 local; DINOv2: 2 + 8).
        num_teacher_crops: ``G``, the global crops (2), ``1 <= G <= S``.
        student_temp: the student's softmax temperature (0.1).

    Returns:
        Scalar, in nats.
    """
    s, g = num_student_crops, num_teacher_crops
    if student_logits.ndim != 2 or teacher_probs.ndim != 2 or student_logits.shape[1] != teacher_probs.shape[1]:
        raise ValueError(f"student_logits and teacher_probs must be (S * B, K) and (G * B, K), got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_probs.shape)}")
    if not 1 <= g <= s or s < 2:
        raise ValueError(f"need 1 <= num_teacher_crops <= num_student_crops and 2 student crops, got G={g}, S={s}")
    batch, k = len(student_logits) // s, student_logits.shape[1]
    if batch * s != len(student_logits) or batch * g != len(teacher_probs):
        raise ValueError(f"{len(student_logits)} student rows and {len(teacher_probs)} teacher rows are not "
                         f"S={s} and G={g} crops of one batch")
    with _full_precision(student_logits):
        log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1).reshape(s, batch * k)
        q = teacher_probs.detach().float().reshape(g, batch * k)
        cross_entropy = -(q @ log_p.T) / batch  # (G, S): teacher crop t against student crop s, batch mean
    # the diagonal (t, t), t < G, pairs a global crop with itself
    return (cross_entropy.sum() - cross_entropy.diagonal().sum()) / (g * (s - 1))


class TeacherCentering(nn.Module):
    """How a teacher's logits become the targets of :func:`dino_loss` and :func:`ibot_patch_loss`: centring and
    sharpening that keep the teacher from collapsing. Subclasses are interchangeable in a method.

    Call :meth:`forward` on the teacher's logits of a step, compute the loss, then :meth:`update` with the same
    logits. Both run without gradient and work on any ``(..., K)`` logits (class tokens ``(N, K)`` or patch tokens
    ``(B, N, K)``); ``mask`` (the shape of the logits without ``K``, bool) selects the rows that are targets (the
    masked patches of iBOT), ``None`` for every row.
    """

    def forward(
        self, teacher_logits: torch.Tensor, temperature: float, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(..., K)`` logits -> ``(..., K)`` target probabilities, each target row summing to 1."""
        raise NotImplementedError

    def update(self, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Move the state, if any, with this step's ``(..., K)`` logits; after the loss. Stateless by default."""


def _rows(teacher_logits: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(..., K)`` logits and ``(...)`` mask -> ``(R, K)`` float32 rows and ``(R, 1)`` bool (or ``None``)."""
    if mask is not None and mask.shape != teacher_logits.shape[:-1]:
        raise ValueError(f"mask must be {tuple(teacher_logits.shape[:-1])}, got {tuple(mask.shape)}")
    rows = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1])
    return rows, None if mask is None else mask.reshape(-1, 1).bool()


class DINOCentering(TeacherCentering):
    """DINO's centring: ``softmax((logits - c) / temperature)`` with ``c`` an EMA of the teacher's mean logits.

    ``update`` sets ``c <- m c + (1 - m) mean(logits)``, the mean over the rows of the **global** batch (the sum
    and the row count are all-reduced, one collective). With a ``mask``, the mean is over the selected rows
    (DINOv2's iBOT centre, over the masked patches); a step with none anywhere leaves ``c`` unchanged.
    NOTE: DINOv2's iBOT centre averages the ranks' own means; ours is the mean over every rank's masked patches
    (the same when every rank masks as many).

    Args:
        dim: ``K``, the prototypes (head outputs); DINO: 65536.
        momentum: ``m``, DINO's ``center_momentum`` (0.9).
    """

    center: torch.Tensor

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))  # persistent: a resumed run needs it

    @torch.no_grad()
    def forward(
        self, teacher_logits: torch.Tensor, temperature: float, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(..., K)`` -> ``(..., K)`` float32 ``softmax((logits - c) / temperature)``, every row (``mask`` unused)."""
        return F.softmax((teacher_logits.detach().float() - self.center) / temperature, dim=-1)

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """EMA of the centre towards the mean of the ``(..., K)`` logits over the global batch (selected rows)."""
        rows, keep = _rows(teacher_logits, mask)
        weights = rows.new_ones(1, len(rows)) if keep is None else keep.T.to(rows.dtype)  # (1, R)
        totals = all_sum(torch.cat([weights @ rows, weights.sum(1, keepdim=True)], dim=1))  # (1, K + 1)
        count = totals[:, -1:]
        mean = totals[:, :-1] / count.clamp_min(1.0)
        self.center.lerp_(mean.to(self.center.dtype), (1.0 - self.momentum) * (count > 0).to(self.center.dtype))


class SinkhornKnoppCentering(TeacherCentering):
    """DINOv2's Sinkhorn-Knopp centring (from SwAV): targets that spread the batch evenly over the prototypes.

    ``Q = exp(logits / temperature)`` over the rows of the **global** batch is rescaled alternately so that every
    prototype (column) holds the same total mass and every row sums to 1; after ``iterations`` rounds (DINOv2: 3)
    every row sums to 1 exactly and the column sums approach ``R / K`` (``R`` the global row count). The column
    sums are all-reduced (one collective per round). Stateless: :meth:`update` does nothing.

    NOTE: the reference divides ``Q`` by its global sum first and by ``K`` and ``R`` in each round; every one of
    these scalars is undone by the next normalisation, so we leave them out (and never need ``R``). We subtract
    each prototype's maximum over the global batch before ``exp`` (an all-gather of every rank's ``K`` maxima): a
    constant per prototype that the first column normalisation undoes, so the result is the same, but ``exp``
    cannot overflow at small temperatures. With a ``mask``, only the selected rows take part (DINOv2's iBOT
    targets, over the masked patches); the others come back as zeros.

    Args:
        iterations: rounds of (columns, rows) normalisation (3).
    """

    def __init__(self, iterations: int = 3) -> None:
        super().__init__()
        self.iterations = iterations

    @torch.no_grad()
    def forward(
        self, teacher_logits: torch.Tensor, temperature: float, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(..., K)`` logits -> ``(..., K)`` float32 assignment probabilities; rows outside ``mask`` are 0."""
        rows, keep = _rows(teacher_logits, mask)
        rows = rows / temperature
        candidates = rows if keep is None else rows.masked_fill(~keep, float("-inf"))
        shift = gather(candidates.amax(0, keepdim=True)).amax(0, keepdim=True)  # (1, K), equal on every rank
        q = torch.exp(rows - shift)
        if keep is not None:
            q = torch.where(keep, q, 0.0)
        tiny = torch.finfo(q.dtype).tiny  # an empty row or column stays 0 instead of 0 / 0
        for _ in range(self.iterations):
            q /= all_sum(q.sum(0, keepdim=True)).clamp_min(tiny)  # every prototype: the same mass
            q /= q.sum(1, keepdim=True).clamp_min(tiny)  # every row: mass 1
        return q.reshape(teacher_logits.shape)


def ibot_patch_loss(
    student_patch_logits: torch.Tensor,
    teacher_patch_probs: torch.Tensor,
    mask: torch.Tensor,
    student_temp: float = 0.1,
) -> torch.Tensor:
    """iBOT's masked-patch cross-entropy as DINOv2 computes it (``iBOTPatchLoss.forward_masked``).

    ``sum_b sum_{n masked in b} CE(q[b, n], softmax(student[b, n] / student_temp)) / max(M_b, 1) / B`` with
    ``M_b`` image ``b``'s count of masked patches: each image's masked patches share weight 1, an image without a
    masked patch adds 0 but still counts in ``B``. Dense: unmasked positions are zeroed by ``mask``, never
    selected (selecting by a bool mask is a host read). The teacher is detached. Per-sample, like
    :func:`dino_loss`: its mean over ranks is the loss of the global batch.

    Args:
        student_patch_logits: ``(B, N, K)`` student head outputs for the ``N`` patch tokens of the masked input.
        teacher_patch_probs: ``(B, N, K)`` teacher targets for the unmasked input (a :class:`TeacherCentering`'s
            output, with ``mask``); only masked positions are read.
        mask: ``(B, N)`` bool, True where the student's patch was masked.
        student_temp: the student's temperature (0.1).

    Returns:
        Scalar, in nats.
    """
    if (student_patch_logits.ndim != 3 or student_patch_logits.shape != teacher_patch_probs.shape
            or mask.shape != student_patch_logits.shape[:2]):
        shapes = (tuple(student_patch_logits.shape), tuple(teacher_patch_probs.shape), tuple(mask.shape))
        raise ValueError(f"expected (B, N, K) logits and probs and a (B, N) mask, got {shapes}")
    mask = mask.bool()
    with _full_precision(student_patch_logits):
        log_p = F.log_softmax(student_patch_logits.float() / student_temp, dim=-1)
        cross_entropy = -torch.einsum("bnk,bnk->bn", teacher_patch_probs.detach().float(), log_p)  # (B, N)
    weights = mask.float() / mask.sum(1, keepdim=True).clamp_min(1)  # (B, N)
    return torch.where(mask, cross_entropy * weights, 0.0).sum() / len(mask)


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The KoLeo regulariser (Sablayrolles et al. 2019, "Spreading vectors for similarity search"), as DINOv2
    applies it to the student's class tokens: ``-mean_i log(||x_i - x_nn(i)|| + eps)`` over the l2-normalised rows,
    ``nn(i)`` the nearest other row. Pushes the nearest neighbours apart, spreading the features.

    Computed on this rank's ``B`` rows only, as DINOv2 does (per GPU, on each global crop's ``(B, D)`` class tokens
    separately, the two values summed and weighted by 0.1): it is not a global-batch quantity. The neighbour is
    chosen without gradient; the distance is ``pairwise_distance(x_i, x_nn(i), eps)``, as in DINOv2.
    NOTE: a row's own similarity is set below every cosine (DINOv2 sets it to -1, which an opposite row ties).

    Args:
        x: ``(B, D)`` features, ``B >= 2``.
        eps: added in the normalisation, the distance and the log (1e-8).
    """
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be (B, D) with B >= 2, got {tuple(x.shape)}")
    with _full_precision(x):
        x = F.normalize(x.float(), p=2, dim=-1, eps=eps)
        with torch.no_grad():
            similarity = x @ x.T
            similarity.fill_diagonal_(-2.0)
            nearest = similarity.argmax(dim=1)  # (B,)
        distance = F.pairwise_distance(x, x[nearest], p=2, eps=eps)
        return -torch.log(distance + eps).mean()


class TeacherTemperature:
    """DINO's teacher temperature at a (fractional) epoch: linear from ``warmup_temp`` to ``temp`` over
    ``warmup_epochs``, then constant. A pure function of the epoch (pass ``step / steps_per_epoch``), picklable.

    Defaults are DINO's code defaults (0.04 throughout). The DINO paper's ViT recipe and DINOv2's default config warm
    up 0.04 -> 0.07 over 30 epochs: ``TeacherTemperature(temp=0.07, warmup_temp=0.04, warmup_epochs=30)``; DINO
    finds temperatures above 0.07 unstable.
    NOTE: DINO tabulates ``linspace(warmup_temp, temp, warmup_epochs)`` per epoch and so reaches ``temp`` at epoch
    ``warmup_epochs - 1``; DINOv2 does the same per iteration. Ours reaches it at ``warmup_epochs``, which is
    DINOv2's schedule to within an iteration when given fractional epochs.
    """

    def __init__(self, temp: float = 0.04, warmup_temp: float = 0.04, warmup_epochs: float = 0) -> None:
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.temp, self.warmup_temp, self.warmup_epochs = temp, warmup_temp, warmup_epochs

    def __call__(self, epoch: float) -> float:
        if epoch >= self.warmup_epochs:
            return self.temp
        return self.warmup_temp + (self.temp - self.warmup_temp) * max(epoch, 0) / self.warmup_epochs
