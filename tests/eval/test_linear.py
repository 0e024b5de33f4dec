"""Linear probe on cached features, against known answers and scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from byol.eval.linear import few_shot_probe, fit_softmax_regression, linear_probe, standardize, stratified_split


def _clusters(n_per_class: int, classes: int, dim: int, spread: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


def test_separable_clusters_reach_100_percent():
    x, y = _clusters(60, 5, 16, 0.3, 0)
    tx, ty = _clusters(20, 5, 16, 0.3, 0)  # same centres (same seed), fresh noise below
    tx = tx + 0.05 * torch.randn_like(tx)
    result = linear_probe(x, y, tx, ty, num_classes=5)
    assert result.top1 == pytest.approx(100.0)
    assert result.top5 == pytest.approx(100.0)


def test_agrees_with_scikit_learn_logistic_regression():
    x, y = _clusters(80, 4, 10, 2.5, 1)  # overlapping classes: accuracy well below 100
    gen = torch.Generator().manual_seed(7)
    perm = torch.randperm(len(y), generator=gen)
    train, test = perm[:240], perm[240:]
    wd = 1e-2
    trx, tex = standardize(x[train], x[test])
    head = fit_softmax_regression(trx, y[train], 4, weight_decay=wd)
    ours = (head(tex).argmax(1) == y[test]).float().mean().item() * 100
    # sklearn minimises C * sum(CE) + ||W||^2 / 2, i.e. mean(CE) + ||W||^2 / (2 C N): C = 1 / (wd * N)
    sk = LogisticRegression(C=1.0 / (wd * len(train)), max_iter=5000, tol=1e-8).fit(trx.numpy(), y[train].numpy())
    theirs = (sk.predict(tex.numpy()) == y[test].numpy()).mean() * 100
    assert 50 < theirs < 99
    assert abs(ours - theirs) <= 1.0
    np.testing.assert_allclose(head.weight.numpy(), sk.coef_, atol=2e-3)


def test_weight_decay_is_selected_without_the_test_split():
    x, y = _clusters(50, 3, 8, 1.5, 2)
    tx, ty = _clusters(10, 3, 8, 1.5, 3)
    a = linear_probe(x, y, tx, ty, num_classes=3)
    b = linear_probe(x, y, tx, torch.randint(0, 3, ty.shape), num_classes=3)  # scrambled test labels
    assert a.weight_decay == b.weight_decay and a.val_top1 == b.val_top1


def test_stratified_split_holds_out_every_class():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    keep, held = stratified_split(y, 0.2)
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(len(y)))
    assert sorted(y[held].tolist()) == [0, 0, 1, 2]


def test_few_shot_on_separable_clusters():
    x, y = _clusters(40, 4, 8, 0.3, 4)
    tx, ty = x + 0.05 * torch.randn_like(x), y
    mean, std = few_shot_probe(x, y, tx, ty, shots=3, draws=4)
    assert mean == pytest.approx(100.0) and std == pytest.approx(0.0)
