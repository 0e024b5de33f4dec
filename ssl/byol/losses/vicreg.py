"""VICReg (Bardes, Ponce & LeCun 2022): variance, invariance and covariance terms over the global batch."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.distributed import gather
from .barlow_twins import off_diagonal


class VICRegTerms(NamedTuple):
    """The three unweighted terms, each a scalar."""

    invariance: torch.Tensor  # mean squared distance of the two views' embeddings
    variance: torch.Tensor  # hinge on each dimension's std, averaged over dimensions, then over the two views
    covariance: torch.Tensor  # squared off-diagonal covariances / D, summed over the two views


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-4) -> VICRegTerms:
    """The terms of the VICReg loss of ``(B, D)`` embeddings, over the **global** batch (gathered from every rank).

    - invariance: ``mean((z1 - z2)^2)``;
    - variance: ``mean_j relu(1 - sqrt(Var(z_j) + eps))``, for each view, halved and summed;
    - covariance: ``sum_{i != j} Cov(z)_ij^2 / D``, for each view, summed.

    ``Var`` and ``Cov`` are the unbiased batch estimates, as in the paper's code.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = gather(z1.float()), gather(z2.float())
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    variance = z1.new_zeros(())
    covariance = z1.new_zeros(())
    for z in (z1, z2):
        z = z - z.mean(0)
        variance = variance + F.relu(1 - torch.sqrt(z.var(0) + eps)).mean() / 2
        covariance = covariance + off_diagonal(z.T @ z / (n - 1)).pow(2).sum() / d
    return VICRegTerms(invariance, variance, covariance)


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0
) -> torch.Tensor:
    """``invariance * I + variance * V + covariance * C`` (paper: 25, 25, 1) of :func:`vicreg_terms`."""
    terms = vicreg_terms(z1, z2)
    return invariance * terms.invariance + variance * terms.variance + covariance * terms.covariance
