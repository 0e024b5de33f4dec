"""Barlow Twins (Zbontar et al. 2021): the cross-correlation of two views' embeddings driven to the identity."""

from __future__ import annotations

import torch

from ..core.distributed import gather


def batch_standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(N, D)`` -> each column at mean 0 and variance 1 over the batch (``BatchNorm1d(affine=False)`` in training)."""
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(D, D)`` cross-correlation ``C_ij = sum_n a_ni b_nj / N`` of the batch-standardised ``(N, D)`` embeddings."""
    a, b = batch_standardize(z1.float(), eps), batch_standardize(z2.float(), eps)
    return a.T @ b / len(a)


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square ``(D, D)`` matrix, flattened ``(D * (D - 1),)``."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, eps: float = 1e-5) -> torch.Tensor:
    """``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2`` over the **global** batch.

    Both ``(B, D)`` projections are gathered from every rank before the batch
    statistics and ``C`` are taken, so every rank computes the loss of the
    whole batch (the official code all-reduces ``C`` after SyncBatchNorm: the
    same quantity).

    Args:
        z1, z2: ``(B, D)`` projections of views 1 and 2.
        lambd: weight of the redundancy-reduction term (paper: 0.0051 for D = 8192).
        eps: added to the batch variance, as BatchNorm does.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    c = cross_correlation(gather(z1), gather(z2), eps)
    return (torch.diagonal(c) - 1).pow(2).sum() + lambd * off_diagonal(c).pow(2).sum()


def mixed_sample_regularizer(
    z1: torch.Tensor, z2: torch.Tensor, z_mixed: torch.Tensor, z2_partner: torch.Tensor, alpha: float,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Mixed Barlow Twins' regulariser (Bandara et al. 2023, "Guarding Barlow Twins Against Overfitting with
    Mixed Samples"), unweighted, over the **global** batch.

    A mixed input ``x_m = alpha * x1 + (1 - alpha) * x2[perm]`` should correlate with each view as the same mix
    of the views' own correlations: with ``C(a, b)`` the cross-correlation of :func:`cross_correlation`,

    ``||C(z_m, z1) - (alpha C(z1, z1) + (1 - alpha) C(z2p, z1))||_F^2
    + ||C(z_m, z2) - (alpha C(z1, z2) + (1 - alpha) C(z2p, z2))||_F^2``,

    with ``z2p = z2[perm]``. The targets are not detached (as in the authors' code). The paper weights it by
    ``lambda_reg * lambda_BT`` (``lambda_reg`` 4 on CIFAR, 2 on STL-10, 1-2 on ImageNet).
    NOTE: the embeddings are standardised as :func:`barlow_twins_loss` does (biased variance + eps, like
    BatchNorm); the authors' small-data code divides by the unbiased std.

    Args:
        z1, z2: ``(B, D)`` projections of views 1 and 2.
        z_mixed: ``(B, D)`` projections of the mixed inputs.
        z2_partner: ``(B, D)`` ``z2[perm]``, the view-2 projection each mixed input was mixed with
            (``perm`` permutes this rank's samples).
        alpha: the mixing weight of view 1, one number for the batch (``Beta(1, 1)`` draws in the paper).
    """
    z1, z2, zm, z2p = (gather(z) for z in (z1, z2, z_mixed, z2_partner))
    target1 = alpha * cross_correlation(z1, z1, eps) + (1 - alpha) * cross_correlation(z2p, z1, eps)
    target2 = alpha * cross_correlation(z1, z2, eps) + (1 - alpha) * cross_correlation(z2p, z2, eps)
    return (cross_correlation(zm, z1, eps) - target1).pow(2).sum() + (cross_correlation(zm, z2, eps) - target2).pow(2).sum()
