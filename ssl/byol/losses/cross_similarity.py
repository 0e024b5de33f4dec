"""BYOL's cross-similarity losses (Garg & Jain 2022, "Self-Labeling Refinement for Robust Representation Learning
with Bootstrap Your Own Latent"): besides its own sample's target, an online prediction is pulled towards the
targets of the *other* samples of the global batch that the target network labels as semantically similar.

NOTE: the paper names the two losses (CCSL, cross-cosine; CSSL, cross-sigmoid) and reports STL-10 linear top-1
76.87% for BYOL + CCSL against 71.04% for BYOL, but neither its text nor a public release fixes every detail of
the formulas. Ours, stated exactly: the target network labels pair ``(i, j)``, ``j != i``, by the cosine of the
two samples' target projections ``s_ij = cos(z_i, z_j)``; CCSL keeps the pairs with ``s_ij > threshold`` (weight
1), CSSL weighs every pair by ``sigmoid((s_ij - threshold) / temperature)``; both average BYOL's ``2 - 2 cos(p_i,
z_j)`` over the labelled pairs of the **global** batch with those weights. Labels and targets carry no gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..core.distributed import all_sum, gather, rank, world_size


def cross_similarity_loss(
    prediction: torch.Tensor, target: torch.Tensor, pair_weights: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``sum_ij w_ij (2 - 2 cos(p_i, z_j)) / sum_ij w_ij`` over the predictions ``i`` and the other samples ``j``
    of the global batch.

    Args:
        prediction: ``(B, D)`` online predictions of one view (this rank's).
        target: ``(B, D)`` target projections of the other view (detached here; gathered from every rank).
        pair_weights: maps the ``(B, W * B)`` target-target cosines ``s_ij`` to pair weights ``w_ij >= 0``.

    Returns:
        Scalar whose mean over ranks is the one-process value on the global batch; 0 when no pair has weight.
    """
    if prediction.shape != target.shape or prediction.ndim != 2:
        raise ValueError(
            f"prediction and target must both be (B, D), got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    batch, offset = len(prediction), rank() * len(prediction)
    p = F.normalize(prediction.float(), dim=1)
    with torch.no_grad():
        z = F.normalize(gather(target.detach().float()), dim=1)  # (W * B, D)
        weights = pair_weights(z[offset : offset + batch] @ z.T)  # (B, W * B)
        rows = torch.arange(batch, device=z.device)
        weights[rows, rows + offset] = 0.0  # a sample with its own target is BYOL's loss
        total = all_sum(weights.sum()).clamp(min=1e-12)  # a collective, not a host read
    distances = 2.0 - 2.0 * p @ z.T
    return (weights * distances).sum() / total * world_size()


class CrossCosineLoss:
    """CCSL: pairs whose target projections have cosine above ``threshold`` count, each with weight 1.

    Args:
        threshold: cosine above which two samples are labelled similar (our default 0.8).
        weight: the term's factor in BYOL's loss, per direction.
    """

    def __init__(self, threshold: float = 0.8, weight: float = 1.0) -> None:
        self.threshold, self.weight = threshold, weight

    def pair_weights(self, similarity: torch.Tensor) -> torch.Tensor:
        return (similarity > self.threshold).float()

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` predictions and the other view's targets -> weighted scalar."""
        return self.weight * cross_similarity_loss(prediction, target, self.pair_weights)


class CrossSigmoidLoss(CrossCosineLoss):
    """CSSL: every pair counts with weight ``sigmoid((s_ij - threshold) / temperature)``, a soft CCSL (CCSL is
    its limit as ``temperature -> 0``).

    Args:
        threshold: the cosine at which a pair has weight 1/2 (our default 0.8).
        temperature: width of the sigmoid (our default 0.05).
        weight: the term's factor in BYOL's loss, per direction.
    """

    def __init__(self, threshold: float = 0.8, temperature: float = 0.05, weight: float = 1.0) -> None:
        super().__init__(threshold, weight)
        self.temperature = temperature

    def pair_weights(self, similarity: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((similarity - self.threshold) / self.temperature)
