import pytest
import torch

from byol.losses import normalized_mse, symmetric_byol_loss


def test_loss_against_direct_computation():
    torch.manual_seed(0)
    p, z = torch.randn(5, 7), torch.randn(5, 7)
    pn = p / p.norm(dim=1, keepdim=True)
    zn = z / z.norm(dim=1, keepdim=True)
    expected = ((pn - zn) ** 2).sum(dim=1).mean()  # squared distance of unit vectors = 2 - 2 cos
    torch.testing.assert_close(normalized_mse(p, z), expected)


def test_loss_extremes():
    x = torch.randn(4, 3)
    assert normalized_mse(x, 2 * x).item() == pytest.approx(0.0, abs=1e-6)
    assert normalized_mse(x, -x).item() == pytest.approx(4.0, abs=1e-6)


def test_target_gets_no_gradient():
    p = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    normalized_mse(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_symmetric_is_sum_of_both_directions_and_symmetric():
    torch.manual_seed(1)
    p1, p2, z1, z2 = (torch.randn(6, 8) for _ in range(4))
    total = symmetric_byol_loss(p1, p2, z1, z2)
    torch.testing.assert_close(total, normalized_mse(p1, z2) + normalized_mse(p2, z1))
    torch.testing.assert_close(total, symmetric_byol_loss(p2, p1, z2, z1))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must both be"):
        normalized_mse(torch.randn(4, 3), torch.randn(4, 5))
