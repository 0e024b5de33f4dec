"""InfoNCE (MoCo v3), Barlow Twins and VICReg against cases worked by hand, and their invariances."""

import math

import numpy as np
import pytest
import torch

from byol.losses import (
    barlow_twins_loss, cross_correlation, infonce, mixed_sample_regularizer, negative_cosine, symmetric_infonce,
    symmetric_negative_cosine, vicreg_loss, vicreg_terms,
)


def test_infonce_on_known_logits():
    # q = k = I (2 samples, 2 dims), T = 0.5: logits [[2, 0], [0, 2]]; each row's CE is log(1 + e^-2);
    # scaled by 2T = 1.
    eye = torch.eye(2)
    assert infonce(eye, eye, temperature=0.5).item() == pytest.approx(math.log1p(math.exp(-2)), rel=1e-6)
    # 3 samples, keys that swap the first two: query 0's positive key is orthogonal to it, logits row 0 = [1, 0, 0]/T
    q = torch.eye(3)
    k = torch.eye(3)[[1, 0, 2]]
    t = 0.25
    row01 = -math.log(1 / (math.exp(4) + 2))  # the positive scores 0, one negative 4, one 0
    row2 = -math.log(math.exp(4) / (math.exp(4) + 2))
    assert infonce(q, k, t).item() == pytest.approx((2 * row01 + row2) / 3 * 2 * t, rel=1e-6)


def test_infonce_ignores_scale_detaches_keys_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    q1, q2, k1, k2 = (torch.randn(6, 5, generator=g) for _ in range(4))
    torch.testing.assert_close(infonce(3 * q1, 0.5 * k2), infonce(q1, k2))
    torch.testing.assert_close(symmetric_infonce(q1, q2, k1, k2), symmetric_infonce(q2, q1, k2, k1))
    keys = k2.clone().requires_grad_()
    queries = q1.clone().requires_grad_()
    infonce(queries, keys).backward()
    assert keys.grad is None and queries.grad.abs().sum() > 0


def test_barlow_twins_on_a_two_by_two_cross_correlation():
    # Each column of z1 and z2 is (+1, -1) or (-1, +1): already at mean 0 and (biased) variance 1.
    # C = z1^T z2 / 2 = [[1, -1], [1, -1]]: on-diagonal (1-1)^2 + (-1-1)^2 = 4, off-diagonal 1 + 1 = 2.
    z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    z2 = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    torch.testing.assert_close(cross_correlation(z1, z2, eps=0.0), torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
    assert barlow_twins_loss(z1, z2, lambd=0.5, eps=0.0).item() == pytest.approx(4 + 0.5 * 2)


def test_barlow_twins_is_symmetric_and_invariant_to_each_dimensions_scale_and_shift():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    torch.testing.assert_close(barlow_twins_loss(z1, z2), barlow_twins_loss(z2, z1))
    scale, shift = torch.tensor([0.5, 2.0, 3.0, 7.0]), torch.tensor([1.0, -2.0, 0.0, 5.0])
    torch.testing.assert_close(barlow_twins_loss(z1 * scale + shift, z2, eps=0.0), barlow_twins_loss(z1, z2, eps=0.0))
    # identical, decorrelated views are the optimum: C = I
    white = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert barlow_twins_loss(white, white, eps=0.0).item() == pytest.approx(0.0, abs=1e-6)


def test_each_vicreg_term_by_hand():
    # z1 columns: (1, -1) twice, so Var = 2 (unbiased, n = 2), std = sqrt(2 + 1e-4) > 1: no variance hinge;
    # Cov(z1) = [[2, 2], [2, 2]]: off-diagonal 2^2 * 2 / D(2) = 4.
    # z2 columns: (1, -1) and (0, 0): std sqrt(1e-4) = 0.01 on the second, hinge 0.99, mean over D 0.495.
    # Cov(z2) = [[2, 0], [0, 0]]: 0. Invariance: mean of (0, 1, 0, 1) = 0.5.
    z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    z2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    terms = vicreg_terms(z1, z2)
    assert terms.invariance.item() == pytest.approx(0.5)
    assert terms.variance.item() == pytest.approx(0.495 / 2, rel=1e-5)
    assert terms.covariance.item() == pytest.approx(4.0)
    assert vicreg_loss(z1, z2).item() == pytest.approx(25 * 0.5 + 25 * 0.495 / 2 + 4.0, rel=1e-5)
    assert vicreg_loss(z1, z2, 1.0, 0.0, 0.0).item() == pytest.approx(0.5)


def test_vicreg_is_symmetric_and_its_regularisers_ignore_a_shift():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g)
    torch.testing.assert_close(vicreg_loss(z1, z2), vicreg_loss(z2, z1))
    a, b = vicreg_terms(z1, z2), vicreg_terms(z1 + 4.0, z2 + 4.0)
    torch.testing.assert_close((a.variance, a.covariance), (b.variance, b.covariance))


def _mix_reference(z1, z2, zm, z2p, alpha, eps=1e-5):
    """The regulariser written out with numpy loops over the matrix entries: a second implementation."""
    def standardise(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)

    a, b, m, p = (standardise(z.numpy().astype(np.float64)) for z in (z1, z2, zm, z2p))
    n, d = a.shape
    total = 0.0
    for view in (a, b):
        for i in range(d):
            for j in range(d):
                c_m = sum(m[k, i] * view[k, j] for k in range(n)) / n
                target = sum((alpha * a[k, i] + (1 - alpha) * p[k, i]) * view[k, j] for k in range(n)) / n
                total += (c_m - target) ** 2
    return total


def test_mixed_sample_regularizer_against_a_second_implementation_and_its_zero():
    g = torch.Generator().manual_seed(3)
    z1, z2, zm = (torch.randn(8, 3, generator=g) for _ in range(3))
    perm = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])
    got = mixed_sample_regularizer(z1, z2, zm, z2[perm], alpha=0.3)
    assert got.item() == pytest.approx(_mix_reference(z1, z2, zm, z2[perm], 0.3), rel=1e-5)
    # alpha = 1 mixes nothing in: the mixed sample is view 1 and its correlations are the targets
    assert mixed_sample_regularizer(z1, z2, z1, z2[perm], alpha=1.0).item() == pytest.approx(0.0, abs=1e-10)


def test_simsiam_negative_cosine_by_hand():
    # p1 = (1, 0) against z2 = (1, 1): cos = 1/sqrt(2); p2 = (0, 2) against z1 = (0, -3): cos = -1.
    # D = -cos, symmetrised with halves: (-1/sqrt(2) + 1) / 2.
    p1, p2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    z1, z2 = torch.tensor([[0.0, -3.0]]), torch.tensor([[1.0, 1.0]])
    assert symmetric_negative_cosine(p1, p2, z1, z2).item() == pytest.approx((1 - 1 / math.sqrt(2)) / 2)
    assert negative_cosine(p1, 5 * p1).item() == pytest.approx(-1.0)  # the minimum, whatever the scale
