"""The BYOL regression loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL loss ``2 - 2 cos(p, sg(z))``, averaged over the batch.

    Equal to the squared distance of the l2-normalised vectors (Grill et al.
    2020, Eq. 2). The target is detached here, so callers cannot forget it.

    Args:
        prediction: ``(B, D)`` online predictions ``p``.
        target: ``(B, D)`` target projections ``z'``.

    Returns:
        Scalar tensor in ``[0, 4]``.
    """
    if prediction.shape != target.shape or prediction.ndim != 2:
        raise ValueError(
            f"prediction and target must both be (B, D), got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    cos = F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1)
    return (2.0 - 2.0 * cos).mean()


def symmetric_byol_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """Symmetrised BYOL loss: view 1 predicts view 2's target and vice versa, **summed**.

    Summing (not averaging) the two directions is the paper's ``L + L~``;
    averaging halves the gradient and so the effective learning rate.

    Args:
        p1, p2: ``(B, D)`` online predictions of views 1 and 2.
        z1, z2: ``(B, D)`` target projections of views 1 and 2.
    """
    return normalized_mse(p1, z2) + normalized_mse(p2, z1)
