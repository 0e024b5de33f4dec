"""DINO multi-crop views of audio: shapes, crop-major order, statistics, seeds, per-crop randomness, and the local
crop against probes whose values are their own coordinates and against torch's bicubic resize."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from byol.views import DINOAudioViews, MultiCrops
from byol.views.audio import LogMelPreprocess
from byol.views.audio_multi_crop import RandomLocalCrop

STATS = (-8.0, 5.0)


def _waves(batch: int = 4, samples: int = 15200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    freqs = 200 + 1800 * torch.rand(batch, 1, generator=g)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.01 * torch.randn(batch, samples, generator=g)


def test_shapes_and_one_post_normalisation_over_all_crops() -> None:
    views = DINOAudioViews(norm_stats=STATS)
    torch.manual_seed(0)
    out = views(_waves())
    assert isinstance(out, MultiCrops)
    g, l = out
    assert views.shape == (64, 96) and views.local_shape == (64, 48) and views.num_local_crops == 4
    assert g.shape == (2 * 4, 1, 64, 96) and l.shape == (4 * 4, 1, 64, 48)
    assert g.dtype == l.dtype == torch.float32
    every = torch.cat([g.flatten(), l.flatten()])
    assert abs(every.mean().item()) < 1e-5 and every.std().item() == pytest.approx(1.0, abs=1e-5)
    assert views.mixup is not None and views.mixup.filled == 4  # the batch is remembered once, after every crop


def test_local_length_and_count_are_configurable() -> None:
    views = DINOAudioViews(norm_stats=STATS, num_local_crops=3, local_frames=32)
    g, l = views(_waves(2))
    assert g.shape == (4, 1, 64, 96) and l.shape == (6, 1, 64, 32)
    # default window lengths: BYOL-A's time stretch (0.6, 1.5) at 32 of 96 frames
    assert views.local_crop.time_scale == pytest.approx((0.2, 0.5))
    assert DINOAudioViews(norm_stats=STATS, local_time_scale=(0.1, 0.2)).local_crop.time_scale == (0.1, 0.2)


def test_no_local_crops_gives_an_empty_tensor() -> None:
    views = DINOAudioViews(norm_stats=STATS, num_local_crops=0)
    g, l = views(_waves())
    assert g.shape == (8, 1, 64, 96) and l.shape == (0, 1, 64, 48) and l.dtype == torch.float32
    assert abs(g.mean().item()) < 1e-5 and g.std().item() == pytest.approx(1.0, abs=1e-5)


def test_crops_are_crop_major() -> None:
    """Row ``i * B + b`` is crop ``i`` of clip ``b``: with frequency crops off, each crop's loudest mel band is
    its clip's (clips are tones of different pitches)."""
    waves = _waves(4)
    views = DINOAudioViews(norm_stats=STATS, mixup_ratio=0.0, fader_gain=None, freq_scale=(1.0, 1.0), num_local_crops=3)
    g, l = views(waves)
    loudest = views.log_mel(waves).mean(dim=-1).argmax(dim=-1).flatten()  # (B,) band of each clip's tone
    assert len(set(loudest.tolist())) == 4
    assert torch.equal(g.mean(dim=-1).argmax(dim=-1).flatten(), loudest.repeat(2))
    assert torch.equal(l.mean(dim=-1).argmax(dim=-1).flatten(), loudest.repeat(3))


def test_dataset_statistics_path() -> None:
    views = DINOAudioViews()
    assert views.needs_statistics
    with pytest.raises(RuntimeError, match="statistics"):
        views(_waves())
    waves = _waves(6, seed=2)
    moments = views.statistics_moments(waves[:4]) + views.statistics_moments(waves[4:])  # summed over batches
    assert "6 clips" in views.set_statistics(moments, 6)
    assert not views.needs_statistics
    lms = views.log_mel(waves).double()
    mean, std = views.pre_norm.statistics()
    assert mean == pytest.approx(lms.mean().item(), rel=1e-9) and std == pytest.approx(lms.std(correction=0).item())
    g, l = views(waves)
    assert g.shape == (12, 1, 64, 96) and l.shape == (24, 1, 64, 48)
    pre = views.preprocessing
    assert isinstance(pre, LogMelPreprocess) and (pre.mean, pre.std) == (mean, std)
    assert pre.export_config()["mean"] == mean
    x = _waves(2, samples=24000)  # evaluation takes any length
    torch.testing.assert_close(pre(x), views.preprocess(x))
    torch.testing.assert_close(views.preprocess(x), (views.log_mel(x) - mean) / std)


def test_running_pre_normalisation_follows_set_epoch() -> None:
    views = DINOAudioViews(pre_norm="running", norm_update_epochs=1)
    views.set_epoch(0)
    views(_waves())
    stats = views.pre_norm.statistics()
    assert stats[0] == pytest.approx(views.log_mel(_waves()).double().mean().item(), rel=1e-6)
    views.set_epoch(1)
    views(_waves(seed=3))
    assert views.pre_norm.statistics() == stats


def test_same_seed_same_crops_other_seed_other_crops() -> None:
    a, b, c = (DINOAudioViews(norm_stats=STATS) for _ in range(3))
    for views in (a, b, c):  # the same mixup memory
        torch.manual_seed(0)
        views(_waves(seed=1))
    outs = []
    for views, seed in ((a, 1), (b, 1), (c, 2)):
        torch.manual_seed(seed)
        outs.append(views(_waves()))
    for x, y, z in zip(*outs):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
        assert not torch.allclose(x, z)


def test_crops_differ_per_clip_and_per_crop() -> None:
    views = DINOAudioViews(norm_stats=STATS, mixup_ratio=0.0, num_local_crops=3)
    waves = _waves(1).expand(4, -1).contiguous()
    torch.manual_seed(0)
    for crops in views(waves):
        flat = crops.flatten(1)
        distance = torch.cdist(flat, flat)
        assert (distance + torch.eye(len(flat)) > 1e-2).all()  # no two crops alike, of one clip or of two


def test_runs_in_float32_under_autocast() -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g, l = DINOAudioViews(norm_stats=STATS, num_local_crops=1)(_waves(2))
    assert g.dtype == l.dtype == torch.float32


def _probe(batch: int, f: int, t: int) -> torch.Tensor:
    """``(batch, 2, f, t)``: channel 0 holds the frame index, channel 1 the band index."""
    frames = torch.arange(t, dtype=torch.float32).expand(f, t)
    bands = torch.arange(f, dtype=torch.float32)[:, None].expand(f, t)
    return torch.stack([frames, bands]).expand(batch, -1, -1, -1)


def test_local_windows_lie_inside_the_clip_with_the_configured_lengths() -> None:
    """Frames and bands land exactly on the window's first and last (``align_corners=True``), so the probe's
    values there give each window; in between the frames advance uniformly (a linear resize)."""
    f, t, frames = 16, 64, 24
    crop = RandomLocalCrop(frames, time_scale=(0.25, 0.75), freq_scale=(0.6, 1.5))
    torch.manual_seed(0)
    out = crop(_probe(64, f, t))
    assert out.shape == (64, 2, f, frames)
    start, end = out[:, 0, 0, 0], out[:, 0, 0, -1]
    width = end - start + 1
    torch.testing.assert_close(width, width.round(), atol=1e-4, rtol=0)
    assert (start >= -1e-4).all() and (end <= t - 1 + 1e-4).all()
    assert (width >= int(0.25 * t) - 1e-4).all() and (width <= int(0.75 * t) + 1e-4).all()
    assert width.min() < 16 + 10 and width.max() > 48 - 10  # the draws spread over the range
    assert len(set(start.round().tolist())) > 20  # a window of its own per sample
    positions = start[:, None] + torch.arange(frames) * (width[:, None] - 1) / (frames - 1)
    inside = (positions >= 1) & (positions <= t - 3)  # bicubic taps within the clip
    # torch's cubic (a = -0.75) is exact at whole frames and within 0.05 frame of a line in between
    torch.testing.assert_close(out[:, 0, f // 2][inside], positions[inside], atol=0.06, rtol=0)
    top, bottom = out[:, 1, 0, 0], out[:, 1, -1, 0]
    height = bottom - top + 1
    assert (top >= -1e-4).all() and (bottom <= f - 1 + 1e-4).all()
    assert (height >= int(0.6 * f) - 1e-4).all() and (height <= f + 1e-4).all()
    assert (height > f - 0.5).any() and (height < f - 0.5).any()  # some crops keep every band, some zoom


def test_whole_clip_local_crop_is_a_bicubic_resize() -> None:
    x = torch.randn(3, 1, 16, 40, generator=torch.Generator().manual_seed(0))
    crop = RandomLocalCrop(20, time_scale=(1.0, 1.0), freq_scale=(1.0, 1.0))
    out = crop(x)
    reference = F.interpolate(x, size=(16, 20), mode="bicubic", align_corners=True)
    positions = torch.arange(20) * 39 / 19
    inside = (positions >= 1) & (positions <= 37)  # the two differ only where taps fall outside the clip
    torch.testing.assert_close(out[..., inside], reference[..., inside], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_local_crops=-1), "num_local_crops"),
        (dict(num_local_crops=1.5), "num_local_crops"),
        (dict(local_frames=0), "local_frames"),
        (dict(local_frames=0, local_time_scale=(0.2, 0.5)), "local_frames"),
        (dict(local_time_scale=(0.5, 1.2)), "local_time_scale"),
        (dict(local_time_scale=(0.0, 0.5)), "local_time_scale"),
        (dict(local_freq_scale=(0.0, 1.0)), "local_freq_scale"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DINOAudioViews(norm_stats=STATS, **kwargs)
