"""Colour jitter against torchvision's functional adjustments, worked per sample."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from byol.views.color_jitter import (
    RandomColorJitter,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
)

TORCHVISION = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def images(n: int = 6, channels: int = 3, size: int = 9, seed: int = 0) -> torch.Tensor:
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))
    x[0, :, 0, 0] = 0.5  # a grey pixel (hue undefined) and a black one
    x[0, :, 0, 1] = 0.0
    return x


def factors(n: int = 6, seed: int = 1) -> torch.Tensor:
    u = torch.rand(n, 4, generator=torch.Generator().manual_seed(seed))
    return torch.stack([0.6 + 0.8 * u[:, 0], 0.6 + 0.8 * u[:, 1], 0.8 + 0.4 * u[:, 2], 0.2 * u[:, 3] - 0.1], dim=1)


@pytest.mark.parametrize("index", range(4))
def test_each_adjustment_matches_torchvision_per_sample(index):
    x, f = images(), factors()
    ours = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)[index](x, f[:, index])
    reference = torch.stack([TORCHVISION[index](x[i], f[i, index].item()) for i in range(len(x))])
    torch.testing.assert_close(ours, reference, atol=2e-6, rtol=0)


def test_jitter_in_an_order_matches_torchvision_applied_in_that_order():
    x, f, order = images(), factors(), [3, 0, 2, 1]
    expected = []
    for i in range(len(x)):
        y = x[i]
        for j in order:
            y = TORCHVISION[j](y, f[i, j].item())
        expected.append(y)
    torch.testing.assert_close(color_jitter(x, f, order), torch.stack(expected), atol=5e-6, rtol=0)


def test_random_jitter_is_identity_at_p0_and_draws_factors_per_sample_in_range():
    x = images(n=64, size=5)
    assert torch.equal(RandomColorJitter(0.4, 0.4, 0.2, 0.1, p=0.0)(x), x)
    torch.manual_seed(0)
    y = RandomColorJitter(0.4, 0.0, 0.0, 0.0, p=1.0)(x)  # brightness only: y = f x where nothing clips
    unclipped = (y < 1) & (x > 0.05)
    ratio = torch.where(unclipped, y / x, float("nan"))
    per_sample = ratio.flatten(1).nanmean(1)
    spread = (ratio.flatten(1) - per_sample[:, None]).abs().nan_to_num().amax()
    assert spread < 1e-5  # one factor per image
    assert per_sample.min() >= 0.6 - 1e-6 and per_sample.max() <= 1.4 + 1e-6 and per_sample.std() > 0.15


def test_random_jitter_applies_to_about_p_of_the_samples():
    x = images(n=400, size=4)
    torch.manual_seed(1)
    changed = (RandomColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8)(x) != x).flatten(1).any(1).float().mean()
    assert 0.72 < changed < 0.88  # binomial(400, 0.8): std 0.02


def test_one_channel_images_get_brightness_and_contrast_only():
    x = images(channels=1)
    torch.manual_seed(2)
    y = RandomColorJitter(0.4, 0.4, 0.0, 0.0)(x)
    assert y.shape == x.shape and not torch.equal(y, x) and y.min() >= 0 and y.max() <= 1
    with pytest.raises(ValueError, match="hue"):
        RandomColorJitter(0.4, 0.4, 0.2, 0.6)


def test_hue_matches_torchvision_where_channels_tie_and_across_every_sector():
    """uint8-like levels make ties between channels common (the sector boundaries of the HSV hexagon); shifts span
    the whole range, so every pixel lands in every sector for some shift."""
    levels = torch.randint(0, 6, (5, 3, 12, 12), generator=torch.Generator().manual_seed(2)).float() / 5
    for shift in (-0.5, -0.3, -0.1, 0.0, 0.05, 0.25, 0.5):
        ours = adjust_hue(levels, torch.full((5,), shift))
        reference = torch.stack([TF.adjust_hue(image, shift) for image in levels])
        torch.testing.assert_close(ours, reference, atol=2e-6, rtol=0)
