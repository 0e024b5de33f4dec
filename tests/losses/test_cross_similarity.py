"""BYOL's cross-similarity losses: a constructed batch whose similar pairs are known, a double loop over pairs as
the second implementation, and invariances."""

import math

import pytest
import torch

from byol.losses import CrossCosineLoss, CrossSigmoidLoss


def constructed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Targets: z0 = e1, z1 = 3 e1 (the one similar pair), z2 = e2, z3 at cosine 0.6 to e1 and 0.8 to e2 (0.8 is
    not above the threshold). Predictions: p0 = e2 (orthogonal to z1), p1 = e1 (on z0); p2, p3 never count."""
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    p = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.3, -2.0], [-1.0, 0.5]])
    return p, z


def double_loop(p: torch.Tensor, z: torch.Tensor, weight_of) -> float:
    """sum_{i != j} w(cos(z_i, z_j)) (2 - 2 cos(p_i, z_j)) / sum_{i != j} w(cos(z_i, z_j)), in Python floats."""
    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    p, z = p.tolist(), z.tolist()
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(z)):
            if i != j:
                w = weight_of(cos(z[i], z[j]))
                num, den = num + w * (2 - 2 * cos(p[i], z[j])), den + w
    return num / den if den else 0.0


def test_ccsl_on_a_batch_whose_similar_pairs_are_known():
    p, z = constructed_batch()
    # pairs (0, 1) and (1, 0) only: 2 - 2 cos(e2, e1) = 2 and 2 - 2 cos(e1, e1) = 0, averaged
    assert CrossCosineLoss(threshold=0.8)(p, z).item() == pytest.approx(1.0, abs=1e-6)
    assert CrossCosineLoss(threshold=0.8, weight=0.5)(p, z).item() == pytest.approx(0.5, abs=1e-6)
    moved = p.clone()
    moved[2:] = torch.randn(2, 2)
    assert CrossCosineLoss(threshold=0.8)(moved, z).item() == pytest.approx(1.0, abs=1e-6)
    # at threshold 0.5, (0, 3), (3, 0), (1, 3), (3, 1), (2, 3), (3, 2) join
    got = CrossCosineLoss(threshold=0.5)(p, z).item()
    assert got == pytest.approx(double_loop(p, z, lambda s: float(s > 0.5)), abs=1e-6)


def test_cssl_against_a_double_loop_and_ccsl_as_its_cold_limit():
    p, z = constructed_batch()
    sigmoid = lambda s, t: 1 / (1 + math.exp(-(s - 0.8) / t))  # noqa: E731
    for t in (0.05, 0.3):
        got = CrossSigmoidLoss(threshold=0.8, temperature=t)(p, z).item()
        assert got == pytest.approx(double_loop(p, z, lambda s: sigmoid(s, t)), rel=1e-5)
    torch.manual_seed(0)
    p, z = torch.randn(16, 4), torch.randn(16, 4)
    torch.testing.assert_close(CrossSigmoidLoss(threshold=0.3, temperature=1e-4)(p, z),
                               CrossCosineLoss(threshold=0.3)(p, z))


@pytest.mark.parametrize("loss", [CrossCosineLoss(threshold=0.2), CrossSigmoidLoss(threshold=0.2, temperature=0.1)])
def test_invariant_to_row_scales_and_sample_order_and_targets_get_no_gradient(loss):
    torch.manual_seed(1)
    p, z = torch.randn(12, 5, requires_grad=True), torch.randn(12, 5, requires_grad=True)
    value = loss(p, z)
    scales, perm = torch.rand(12, 1) + 0.1, torch.randperm(12)
    torch.testing.assert_close(loss(p * scales, z * scales.flip(0)), value)
    torch.testing.assert_close(loss(p[perm], z[perm]), value)
    value.backward()
    assert z.grad is None and p.grad.abs().sum() > 0


def test_no_similar_pair_gives_zero_and_a_zero_gradient():
    p, z = torch.randn(3, 3, requires_grad=True), torch.eye(3)
    loss = CrossCosineLoss(threshold=0.8)(p, z)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(p.grad, torch.zeros(3, 3))


def test_byol_with_ccsl_adds_both_directions_to_byols_loss(make_model):
    plain = make_model()
    cross = make_model(cross_similarity=CrossCosineLoss(threshold=0.0))
    cross.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(8, 1, 8, 8, generator=g), torch.randn(8, 1, 8, 8, generator=g), torch.zeros(8).long())
    out, base = cross.compute_loss(batch), plain.compute_loss(batch)
    with torch.no_grad():
        p1, p2 = (cross.predictor(cross.online(v)[1]) for v in batch[:2])
        t1, t2 = (cross.target(v)[1] for v in batch[:2])
    terms = CrossCosineLoss(threshold=0.0)(p1, t2) + CrossCosineLoss(threshold=0.0)(p2, t1)
    torch.testing.assert_close(out.logs["cross_similarity"], terms)
    torch.testing.assert_close(out.loss, base.loss + terms)
    assert terms > 0
