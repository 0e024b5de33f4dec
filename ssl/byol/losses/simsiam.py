"""SimSiam's objective (Chen & He 2021): negative cosine similarity to the other view's stop-gradient projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-cos(p, sg(z))`` averaged over the batch, in ``[-1, 1]``; ``target`` is detached (the stop-gradient).

    Args:
        prediction: ``(B, D)`` predictor outputs ``p``.
        target: ``(B, D)`` projections ``z`` of the other view.
    """
    if prediction.shape != target.shape or prediction.ndim != 2:
        raise ValueError(f"prediction and target must both be (B, D), got {tuple(prediction.shape)} and "
                         f"{tuple(target.shape)}")
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1).mean()


def symmetric_negative_cosine(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """SimSiam's symmetrised loss ``D(p1, z2) / 2 + D(p2, z1) / 2`` (paper Eq. 2), minimum -1."""
    return (negative_cosine(p1, z2) + negative_cosine(p2, z1)) / 2
