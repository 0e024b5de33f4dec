"""The JEPA objective: regress the target encoder's tokens at the target positions."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def jepa_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error between predicted and target-encoder tokens (I-JEPA's and T-JEPA's L2 loss).

    Args:
        predictions: ``(B, M, K_t, d)`` predictor outputs.
        targets: ``(B, M, K_t, d)`` target tokens of the same positions (detached here).

    Returns:
        Scalar tensor, the mean over all elements.
    """
    if predictions.shape != targets.shape or predictions.ndim != 4:
        raise ValueError(
            "predictions and targets must both be (B, M, K_t, d), "
            f"got {tuple(predictions.shape)} and {tuple(targets.shape)}"
        )
    return F.mse_loss(predictions.float(), targets.detach().float())
