import math

import lightning as L
import pytest
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


class RecordDecay(L.Callback):
    """The weight decay of every parameter group as the optimizer steps with it."""

    def __init__(self) -> None:
        self.decays: list[list[float]] = []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.decays.append([g["weight_decay"] for g in optimizer.param_groups])


def test_weight_decay_follows_a_cosine_to_its_end_value_on_decayed_groups_only(make_model, make_data, make_trainer):
    model, record = make_model(weight_decay_end=0.4), RecordDecay()  # SGD with weight_decay 1e-4
    make_trainer(max_epochs=2, callbacks=[record]).fit(model, make_data(n=64, batch_size=16))  # 8 steps
    total = 8
    for step, decays in enumerate(record.decays):
        expected = 0.4 + (1e-4 - 0.4) * 0.5 * (1 + math.cos(math.pi * step / total))  # worked by hand
        assert decays[0] == pytest.approx(expected)  # the decayed group
        assert decays[1:] == [0.0, 0.0]  # biases and norms, the probe
    assert len(record.decays) == total and record.decays[0][0] == pytest.approx(1e-4)
