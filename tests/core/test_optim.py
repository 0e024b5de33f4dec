import torch
from timm.optim import Lars
from torch import nn

from byol.core.optim import param_groups


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2), nn.LayerNorm(2))


def test_biases_and_norms_get_no_decay():
    model = _model()
    decay, no_decay = param_groups(model)
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    expected = {model[0].bias, model[1].weight, model[1].bias, model[3].bias, model[4].weight, model[4].bias}
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in expected}
    assert no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay


def test_exclude_prefix():
    model = _model()
    groups = param_groups(model, exclude=("3.",))
    names = {id(p) for g in groups for p in g["params"]}
    assert id(model[3].weight) not in names and id(model[0].weight) in names


def test_lars_skips_adaptation_for_no_decay_group():
    """With weight_decay=0, timm's LARS applies the plain SGD step (no trust ratio)."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(10, 10))
    b = nn.Parameter(torch.randn(10))
    opt = Lars([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=0.5, weight_decay=1e-2, momentum=0.0)
    gw, gb = torch.randn(10, 10), torch.randn(10)
    w.grad, b.grad = gw.clone(), gb.clone()
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt.step()
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb)
    trust = 1e-3 * w0.norm() / (gw.norm() + w0.norm() * 1e-2 + 1e-8)
    torch.testing.assert_close(w.detach(), w0 - 0.5 * trust * (gw + 1e-2 * w0))
