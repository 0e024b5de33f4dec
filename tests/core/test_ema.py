import torch
from torch import nn

from byol.core.ema import ema_update, make_target


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_make_target_is_frozen_copy():
    online = _net()
    target = make_target(online)
    for (n, o), (_, t) in zip(online.named_parameters(), target.named_parameters()):
        assert torch.equal(o, t), n
        assert not t.requires_grad and o.requires_grad
        assert o.data_ptr() != t.data_ptr()


def test_ema_update_matches_formula_worked_by_hand():
    online, target = _net(), _net()
    with torch.no_grad():
        for p in target.parameters():
            p.fill_(1.0)
        for p in online.parameters():
            p.fill_(3.0)
    ema_update(target, online, tau=0.75)
    # 0.75 * 1 + 0.25 * 3 = 1.5
    for p in target.parameters():
        assert torch.allclose(p, torch.full_like(p, 1.5))


def test_ema_update_elementwise_against_loop_reference():
    online, target = _net(), make_target(_net())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    expected = [0.9 * t.clone() + 0.1 * o.detach() for t, o in zip(target.parameters(), online.parameters())]
    ema_update(target, online, tau=0.9)
    for e, t in zip(expected, target.parameters()):
        torch.testing.assert_close(t, e)


def test_buffers_are_copied_not_averaged():
    online, target = _net(), make_target(_net())
    online.train()
    online(torch.randn(8, 3) * 5 + 2)  # moves running stats and num_batches_tracked
    ema_update(target, online, tau=0.99)
    for (n, bo), (_, bt) in zip(online.named_buffers(), target.named_buffers()):
        assert torch.equal(bo, bt), n


def test_tau_one_keeps_target():
    online, target = _net(), make_target(_net())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [t.clone() for t in target.parameters()]
    ema_update(target, online, tau=1.0)
    for b, t in zip(before, target.parameters()):
        assert torch.equal(b, t)
