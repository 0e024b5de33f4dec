"""BYOL-A augmentations: log-mixup-exp with a FIFO memory, random resize crop, random linear fader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from byol.views.audio_augment import MixupBYOLA, RandomLinearFader, RandomResizeCrop, log_mixup_exp

EPS = np.finfo(np.float32).eps


def test_log_mixup_exp_is_the_formula():
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(3, 1, 4, 5, generator=g), torch.randn(3, 1, 4, 5, generator=g)
    lam = torch.tensor([0.0, 0.25, 1.0])
    out = log_mixup_exp(x, z, lam).numpy()
    xn, zn = x.double().numpy(), z.double().numpy()
    for i, l in enumerate(lam.tolist()):
        np.testing.assert_allclose(out[i], np.log((1 - l) * np.exp(xn[i]) + l * np.exp(zn[i]) + EPS), rtol=1e-5)


def test_mixup_passes_inputs_while_the_memory_is_empty_then_mixes_with_the_past():
    mixup = MixupBYOLA(ratio=0.4, memory_size=4, shape=(4, 5))
    x = torch.rand(6, 1, 4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mixup(x), x)
    z = torch.full((1, 1, 4, 5), 3.0)  # far from every x, so that lambda below is well conditioned
    mixup.remember(z)
    torch.manual_seed(0)
    out = mixup(x)
    # every sample is log((1 - l) e^x + l e^z) with one l in [0, 0.4] per sample
    lam = (out.double().exp() - x.double().exp()) / (z.double().exp() - x.double().exp())
    per_sample = lam.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1], atol=1e-4)
    assert per_sample[:, 0].min() >= 0 and per_sample[:, 0].max() <= 0.4 and per_sample[:, 0].std() > 0


def test_mixup_memory_is_a_fifo_of_the_last_inputs_and_is_checkpointed():
    mixup = MixupBYOLA(memory_size=3, shape=(2, 2))
    for start in (0, 2):
        mixup.remember(torch.arange(start, start + 2.0).view(2, 1, 1, 1).expand(2, 1, 2, 2))
    mixup.remember(torch.full((1, 1, 2, 2), 4.0))
    assert mixup.filled == 3 and int(mixup.pushed) == 5
    assert sorted(mixup.bank[:, 0, 0].tolist()) == [2.0, 3.0, 4.0]  # 0 and 1 were pushed out
    state = mixup.state_dict()
    assert set(state) == {"bank", "pushed"}
    restored = MixupBYOLA(memory_size=3, shape=(2, 2))  # a resumed run: empty until the state is loaded
    x = torch.zeros(2, 1, 2, 2)
    assert restored.filled == 0 and torch.equal(restored(x), x)
    restored.load_state_dict(state)
    assert restored.filled == 3 and not torch.equal(restored(x), x)
    restored.remember(x)
    assert restored.filled == 3 and int(restored.pushed) == 7
    with pytest.raises(ValueError, match="mixup shape"):
        mixup(torch.zeros(1, 1, 3, 3))


def test_random_resize_crop_keeps_the_shape_and_draws_a_crop_per_sample():
    crop = RandomResizeCrop()
    x = torch.randn(1, 1, 64, 96).expand(8, 1, 64, 96).contiguous()
    torch.manual_seed(0)
    out = crop(x)
    assert out.shape == (8, 1, 64, 96)
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 8))
    boxes = crop.sample_boxes(1000, (64, 96))
    top, left, h, w = boxes.T
    assert h.min() >= int(0.6 * 64) - 1 and h.max() == 64 and w.min() >= int(0.6 * 96) - 1 and w.max() <= 144
    assert top.min() >= 0 and (top + h).max() <= 64 and left.min() >= 0 and (left + w).max() <= 144
    assert len(set(left.tolist())) > 20  # shifts in time vary


def test_the_full_input_box_is_the_identity():
    crop = RandomResizeCrop()
    x = torch.randn(2, 1, 64, 96)
    box = torch.tensor([[0, 24, 64, 96]] * 2)  # the input sits at columns 24..119 of the 64 x 144 canvas
    torch.testing.assert_close(crop.crop_resize(x, box), x, atol=1e-4, rtol=0)  # float32 grid round-off


def test_crop_resize_matches_resizing_the_crop_of_an_explicit_canvas():
    crop = RandomResizeCrop()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 64, 96, generator=g)
    canvas = F.pad(x, (24, 24))  # (2, 1, 64, 144): zeros around the input in time
    boxes = torch.tensor([[5, 10, 50, 120], [0, 30, 64, 70]])
    out = crop.crop_resize(x, boxes)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = F.interpolate(canvas[i : i + 1, :, top : top + h, left : left + w], size=(64, 96), mode="bicubic",
                            align_corners=True)
        # bicubic taps beyond the crop's edge differ (edge repeated vs canvas): compare where all taps are inside
        rows = torch.arange(64) * (h - 1) / 63
        cols = torch.arange(96) * (w - 1) / 95
        inside = ((rows >= 1) & (rows <= h - 3))[:, None] & ((cols >= 1) & (cols <= w - 3))[None]
        torch.testing.assert_close(out[i, 0][inside], ref[0, 0][inside], atol=1e-4, rtol=1e-4)


def test_fader_adds_a_ramp_linear_in_time_and_constant_over_frequency():
    x = torch.randn(16, 1, 64, 96)
    torch.manual_seed(0)
    diff = RandomLinearFader(gain=1.0)(x) - x
    assert torch.allclose(diff, diff[:, :, :1], atol=1e-5)  # same for every mel band
    ramp = diff[:, 0, 0]  # (B, T)
    assert torch.allclose(ramp.diff(n=2, dim=1), torch.zeros(16, 94), atol=1e-5)  # linear in time
    ends = ramp[:, [0, -1]]
    assert ends.abs().max() <= 1.0 and ends.std() > 0.2  # head and tail ~ U(-1, 1), per sample
