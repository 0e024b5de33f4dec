import math

import pytest
import torch

from byol.core.monitor import OnlineLinearProbe, embedding_std, rankme


def test_collapsed_embeddings_have_zero_std_and_rank_one():
    z = torch.randn(1, 16).repeat(32, 1)
    assert embedding_std(z).item() == pytest.approx(0.0, abs=1e-6)
    assert rankme(z).item() == pytest.approx(1.0, abs=1e-3)


def test_rankme_of_orthogonal_embeddings_is_full():
    z = torch.eye(8) * 3.0  # 8 equal singular values: entropy log(8)
    assert rankme(z).item() == pytest.approx(8.0, rel=1e-4)


def test_rankme_against_formula():
    torch.manual_seed(0)
    z = torch.randn(20, 6)
    s = torch.linalg.svd(z).S
    p = s / s.sum() + 1e-7
    assert rankme(z).item() == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)


def test_isotropic_std_near_inverse_sqrt_dim():
    torch.manual_seed(0)
    z = torch.randn(4096, 64)
    assert embedding_std(z).item() == pytest.approx(1 / 8, rel=0.05)


def test_probe_detaches_and_ignores_unlabeled():
    probe = OnlineLinearProbe(5, 3)
    feats = torch.randn(6, 5, requires_grad=True)
    labels = torch.tensor([0, 1, -1, 2, -1, 1])
    loss, logits = probe(feats, labels)
    loss.backward()
    assert feats.grad is None and probe.linear.weight.grad is not None
    ref = torch.nn.functional.cross_entropy(logits[labels >= 0], labels[labels >= 0])
    torch.testing.assert_close(loss, ref)
    loss0, _ = probe(feats, torch.full((6,), -1))
    assert loss0.item() == 0.0
