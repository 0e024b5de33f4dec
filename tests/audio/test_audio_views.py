"""The BYOL-A view pipeline on waveform batches: shapes, post-normalisation, mixup memory, presets, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from byol.views.audio import BYOLAViews, BYOLAv1Views, LogMelPreprocess, RunningNorm


def _waves(batch: int = 4, samples: int = 15200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    freqs = 200 + 1800 * torch.rand(batch, 1, generator=g)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.01 * torch.randn(batch, samples, generator=g)


def test_two_post_normalised_views_of_each_clip():
    views = BYOLAViews(norm_stats=(-8.0, 5.0))
    torch.manual_seed(0)
    v1, v2 = views(_waves())
    assert v1.shape == v2.shape == (4, 1, 64, 96) and v1.dtype == torch.float32
    both = torch.cat([v1, v2])
    assert abs(both.mean().item()) < 1e-5 and both.std().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(v1, v2)
    assert views.mixup is not None and views.mixup.filled == 4  # the batch is remembered once, after both views


def test_views_are_a_function_of_the_rng_state():
    a, b = BYOLAViews(norm_stats=(-8.0, 5.0)), BYOLAViews(norm_stats=(-8.0, 5.0))
    for views in (a, b):
        torch.manual_seed(0)
        views(_waves(seed=1))
    torch.manual_seed(1)
    out_a = a(_waves())
    torch.manual_seed(1)
    out_b = b(_waves())
    for x, y in zip(out_a, out_b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_views_run_in_float32_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v1, _ = BYOLAViews(norm_stats=(-8.0, 5.0))(_waves())
    assert v1.dtype == torch.float32


def test_v1_preset_uses_a_running_norm_updated_only_in_its_warm_up():
    views = BYOLAv1Views(norm_update_epochs=1)
    assert isinstance(views.pre_norm, RunningNorm) and views.fader is None
    assert views.mixup is not None and (views.mixup.ratio, views.mixup.memory_size) == (0.4, 2048)
    views(_waves(), epoch=0)
    stats = views.pre_norm.statistics()
    lms = views.log_mel(_waves())
    assert stats[0] == pytest.approx(lms.double().mean().item(), rel=1e-6)
    views(_waves(seed=3), epoch=1)
    assert views.pre_norm.statistics() == stats


def test_segment_length_mismatch_is_reported():
    with pytest.raises(ValueError, match="segment"):
        BYOLAViews(norm_stats=(0.0, 1.0))(_waves(samples=16000))


def test_preprocess_equals_the_exported_preprocessing_module():
    views = BYOLAViews(norm_stats=(-8.0, 5.0))
    pre = views.preprocessing
    assert isinstance(pre, LogMelPreprocess) and (pre.mean, pre.std) == (-8.0, 5.0)
    x = _waves(samples=24000)  # evaluation takes any length
    torch.testing.assert_close(pre(x), views.preprocess(x))
    assert views.preprocess(x).shape == (4, 1, 64, 151)
