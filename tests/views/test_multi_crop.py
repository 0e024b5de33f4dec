"""DINO's image multi-crop views: sizes, crop-major order, scale ranges, per-crop randomness, where each op
applies, argument checks. References are independent: images that encode their own pixel coordinates, whole-image
crops whose result is known in closed form, torchvision's ``resize``."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from byol.views import DINOGreyImageViews, DINOImageViews, DINOSmallImageViews, MultiCrops
from byol.views.image import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, _RandomResizedCrop
from byol.views.multi_crop import dino_blur_kernel_size

# Every random op off: with whole-image crops the views reduce to a known resize and the normalisation.
OFF = dict(flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=(0.0, 0.0), local_blur_prob=0.0,
           solarize_prob=(0.0, 0.0), local_solarize_prob=0.0)
RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # the normalised output is the uint8 value itself


def _images(b: int = 4, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


def _coordinates(b: int, size: int) -> torch.Tensor:
    """uint8 ``(b, 3, size, size)``: channel 0 is the column x, channel 1 the row y, channel 2 is 10 * sample."""
    x = torch.arange(size).expand(size, size)
    img = torch.stack([x, x.T, torch.zeros_like(x)]).expand(b, -1, -1, -1).clone()
    img[:, 2] = 10 * torch.arange(b).view(b, 1, 1)
    return img.to(torch.uint8)


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def _box_sides(crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height, in source pixels, of the boxes that coordinate crops ``(N, 3, S, S)`` were resized from.

    Output pixel ``j`` of a resized crop averages the source symmetrically around ``x0 + (j + 1/2) w / S - 1/2``,
    so the coordinate channel grows by ``w / S`` per output pixel: the least-squares slope over the pixels away
    from the borders (where the filter is cut by the box), times ``S``.
    """
    s = crops.shape[-1]
    j = torch.arange(2, s - 2, dtype=torch.float32)
    j = j - j.mean()

    def slope(profile: torch.Tensor) -> torch.Tensor:  # (N, S) -> (N,)
        return (profile[:, 2 : s - 2] * j).sum(1) / j.square().sum()

    return slope(crops[:, 0].mean(dim=1)) * s, slope(crops[:, 1].mean(dim=2)) * s


def test_shapes_dtypes_and_channels() -> None:
    cases = [
        (DINOImageViews(global_size=32, local_size=16, num_local_crops=3), _images(4, 3, 48, 40)),
        (DINOSmallImageViews(num_local_crops=2), _images(4, 3, 32, 32)),
        (DINOGreyImageViews(num_local_crops=5), _images(4, 1, 16, 16)),
    ]
    for views, x in cases:
        torch.manual_seed(0)
        out = views(x)
        assert isinstance(out, MultiCrops)
        g, l = out
        c, s, ls, n = x.shape[1], views.global_size, views.local_size, views.num_local_crops
        assert g.shape == (2 * 4, c, s, s) and l.shape == (n * 4, c, ls, ls)
        assert g.dtype == l.dtype == torch.float32
        assert views.preprocess(x).shape == (4, c, s, s)
        assert list(views.parameters()) == [] and views.state_dict() == {}
    assert (DINOSmallImageViews().global_size, DINOSmallImageViews().local_size) == (32, 16)
    assert (DINOGreyImageViews().global_size, DINOGreyImageViews().local_size) == (16, 8)


def test_defaults_are_dinos_imagenet_recipe() -> None:
    views = DINOImageViews()
    assert (views.global_size, views.local_size, views.num_local_crops) == (224, 96, 8)
    assert views.global_view[0].flags["size"] == (224, 224) and views.local_view[0].flags["size"] == (96, 96)
    export = views.preprocessing.export_config()
    assert export["size"] == 224
    assert export["mean"] == pytest.approx(IMAGENET_MEAN) and export["std"] == pytest.approx(IMAGENET_STD)


def test_no_local_crops_gives_an_empty_tensor() -> None:
    views = DINOImageViews(global_size=32, local_size=16, num_local_crops=0)
    g, l = views(_images(3, 3, 40, 40))
    assert g.shape == (6, 3, 32, 32)
    assert l.shape == (0, 3, 16, 16) and l.dtype == torch.float32


def test_crops_are_crop_major() -> None:
    """Row ``i * B + b`` is crop ``i`` of sample ``b``: channel 2 of sample ``b`` holds the constant ``10 b``."""
    b = 5
    views = DINOImageViews(global_size=24, local_size=12, num_local_crops=3, **RAW, **OFF)
    g, l = views(_coordinates(b, 48))
    for crops, count in ((g, 2), (l, 3)):
        expected = (10 * torch.arange(b)).repeat(count).float().view(-1, 1, 1).expand(-1, *crops.shape[-2:])
        torch.testing.assert_close(crops[:, 2], expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("global_scale, local_scale", [((0.4, 1.0), (0.05, 0.4)), ((0.14, 1.0), (0.05, 0.14))])
def test_crop_areas_and_aspect_ratios_lie_in_the_configured_ranges(global_scale, local_scale) -> None:
    size, b = 96, 16
    views = DINOImageViews(global_size=32, local_size=16, num_local_crops=4, global_crop_scale=global_scale,
                           local_crop_scale=local_scale, **RAW, **OFF)
    torch.manual_seed(0)
    g, l = views(_coordinates(b, size))
    for crops, (low, high) in ((g, global_scale), (l, local_scale)):
        w, h = _box_sides(crops)
        area = w * h
        # kornia rounds each side to whole pixels: the area moves by at most half a pixel per side
        slack = 0.5 * (w + h) + 0.3
        assert (area >= low * size**2 - slack).all() and (area <= high * size**2 + slack).all()
        ratio = w / h  # (3/4, 4/3), up to the same rounding
        assert (ratio >= 0.75 * (1 - 1.5 / h)).all() and (ratio <= 4 / 3 * (1 + 1.5 / h)).all()
        fraction = area / size**2  # the draws spread over the range
        assert fraction.min() < low + 0.3 * (high - low) and fraction.max() > high - 0.3 * (high - low)


def test_one_batched_resize_per_crop_size(monkeypatch) -> None:
    """The global crops are one resize call over the ``B`` images with ``2B`` boxes, the local crops one with
    ``L * B`` boxes: the images are never copied per crop."""
    import byol.views.image as image

    calls = []

    def counting_resize_crops(images, boxes, size):
        calls.append((images.shape[0], boxes.shape[0]))
        return resize_crops(images, boxes, size)

    resize_crops = image.resize_crops
    monkeypatch.setattr(image, "resize_crops", counting_resize_crops)
    views = DINOImageViews(global_size=32, local_size=16, num_local_crops=6)
    views(_images(5, 3, 32, 32))
    assert calls == [(5, 10), (5, 30)]


def test_crops_differ_per_sample_and_per_crop() -> None:
    views = DINOSmallImageViews(num_local_crops=3)
    x = _images(1).expand(6, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    g, l = views(x)
    for crops in (g, l):
        flat = crops.flatten(1)
        distance = torch.cdist(flat, flat)
        assert (distance + torch.eye(len(flat)) > 1e-3).all()  # no two crops alike, of one sample or of two


def test_same_seed_same_crops_other_seed_other_crops() -> None:
    views = DINOImageViews(global_size=32, local_size=16, num_local_crops=2)
    x = _images(3, 3, 40, 40)
    torch.manual_seed(0)
    a = views(x)
    torch.manual_seed(0)
    b = views(x)
    torch.manual_seed(1)
    c = views(x)
    for u, v, w in zip(a, b, c):
        assert torch.equal(u, v) and not torch.allclose(u, w)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_flip_probability(flip_prob: float) -> None:
    views = DINOImageViews(global_size=24, local_size=12, num_local_crops=3, **RAW, **{**OFF, "flip_prob": flip_prob})
    g, l = views(_coordinates(4, 48))
    for crops in (g, l):
        step = crops[:, 0, :, -1] - crops[:, 0, :, 0]  # the x coordinate across the crop
        assert (step < 0).all() if flip_prob == 1.0 else (step > 0).all()


def _halved(x: torch.Tensor) -> torch.Tensor:
    """torchvision's antialiased resize of uint8 images ``(B, C, 32, 32)`` to 16 px, in ``[0, 1]``, twice (the two
    local crops)."""
    return (TF.resize(x, [16, 16], antialias=True).float() / 255).repeat(2, 1, 1, 1)


def _whole_image_views(**kwargs) -> DINOImageViews:
    """Whole-image crops (area 1 can only be the whole square) of 32 px images: global crops are the images
    themselves, local crops the images halved (:func:`_halved`)."""
    options = {**OFF, "global_crop_scale": (1.0, 1.0), "local_crop_scale": (1.0, 1.0), "blur_sigma": (1.0, 2.0),
               **kwargs}
    return DINOImageViews(global_size=32, local_size=16, num_local_crops=2, mean=(0.0,) * 3, std=(1.0,) * 3,
                          **options)


def _blurred(crops: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per crop: whether it differs from its unblurred reference."""
    return (crops - reference).flatten(1).abs().amax(1) > 0.02


@pytest.mark.parametrize(
    "blur_prob, local_blur_prob", [((1.0, 0.0), 1.0), ((0.0, 1.0), 0.0), ((0.0, 0.0), 1.0), ((1.0, 1.0), 0.0)]
)
def test_blur_applies_to_the_configured_crops_only(blur_prob, local_blur_prob) -> None:
    x = _images(3, 3, 32, 32)
    unit = x.float() / 255
    views = _whole_image_views(blur_prob=blur_prob, local_blur_prob=local_blur_prob)
    g, l = views(x)
    first, second = _blurred(g[:3], unit), _blurred(g[3:], unit)
    local = _blurred(l, _halved(x))
    assert first.tolist() == [blur_prob[0] == 1.0] * 3
    assert second.tolist() == [blur_prob[1] == 1.0] * 3
    assert local.tolist() == [local_blur_prob == 1.0] * 6


@pytest.mark.parametrize("solarize_prob, local_solarize_prob", [((0.0, 1.0), 0.0), ((1.0, 0.0), 1.0)])
def test_solarize_applies_to_the_configured_crops_only(solarize_prob, local_solarize_prob) -> None:
    x = _images(3, 3, 32, 32)
    unit, local_unit = x.float() / 255, _halved(x)

    def solarized(u: torch.Tensor, on: bool) -> torch.Tensor:
        return torch.where(u >= 0.5, 1 - u, u) if on else u

    views = _whole_image_views(solarize_prob=solarize_prob, local_solarize_prob=local_solarize_prob)
    g, l = views(x)
    torch.testing.assert_close(g[:3], solarized(unit, solarize_prob[0] == 1.0))
    torch.testing.assert_close(g[3:], solarized(unit, solarize_prob[1] == 1.0))
    torch.testing.assert_close(l, solarized(local_unit, local_solarize_prob == 1.0))


def test_dinos_recipe_solarizes_global_crop_2_only_and_blurs_crop_1_always() -> None:
    views = _whole_image_views(blur_prob=(1.0, 0.1), local_blur_prob=0.5, solarize_prob=(0.0, 0.2))
    assert [type(m).__name__ for m in views.global_finish[0]] == ["_RandomGaussianBlur"]
    assert [type(m).__name__ for m in views.global_finish[1]] == ["_RandomGaussianBlur", "_RandomSolarize"]
    assert [m.p for m in views.global_finish[1]] == [0.1, 0.2]
    assert "_RandomSolarize" not in [type(m).__name__ for m in views.local_view]


def test_grayscale_probability_one_makes_every_crop_grey() -> None:
    """Also through blur and solarize applied to some crops only (the grey crops share one channel's memory)."""
    views = DINOImageViews(global_size=32, local_size=16, num_local_crops=2, mean=(0.0,) * 3, std=(1.0,) * 3,
                           grayscale_prob=1.0, blur_prob=(1.0, 0.5), local_blur_prob=0.5, solarize_prob=(0.5, 1.0))
    torch.manual_seed(0)
    for crops in views(_images(4, 3, 40, 40)):
        torch.testing.assert_close(crops, crops[:, :1].expand_as(crops))
        assert crops.std() > 0.05


def test_presets_normalise_with_their_statistics_and_drop_what_they_cannot_use() -> None:
    x = _images(2, 3, 32, 32)
    small = DINOSmallImageViews(num_local_crops=0, global_crop_scale=(1.0, 1.0), **OFF)
    g, _ = small(x)
    torch.testing.assert_close(g, _normalise(x.float() / 255, CIFAR10_MEAN, CIFAR10_STD).repeat(2, 1, 1, 1))
    names = {type(m).__name__ for m in DINOSmallImageViews().modules()}
    assert "_RandomGaussianBlur" not in names and "_RandomSolarize" in names
    grey = DINOGreyImageViews()
    names = {type(m).__name__ for m in grey.modules()}
    assert "_RandomGrayscale" not in names and "_RandomGaussianBlur" not in names
    jitter = next(m for m in grey.modules() if type(m).__name__ == "RandomColorJitter")
    assert jitter.strengths == (0.4, 0.4, 0.0, 0.0)
    assert grey.preprocessing.export_config()["mean"] == [0.5]


def test_runs_in_float32_under_autocast() -> None:
    views = DINOImageViews(global_size=32, local_size=16, num_local_crops=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g, l = views(_images(2, 3, 40, 40))
        p = views.preprocess(_images(2, 3, 40, 40))
    assert g.dtype == l.dtype == p.dtype == torch.float32


def test_blur_kernel_reaches_three_sigma() -> None:
    assert dino_blur_kernel_size(224, 2.0) == 13 and dino_blur_kernel_size(96, 2.0) == 13
    assert dino_blur_kernel_size(4, 2.0) == 7  # reflect padding needs pad < side
    views = DINOImageViews(global_size=64, local_size=32, blur_kernel_size=5)
    assert views.global_finish[0][0].kernel_size == views.local_view[-1].kernel_size == 5


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(global_size=0), "global_size"),
        (dict(local_size=-1), "local_size"),
        (dict(num_local_crops=-1), "num_local_crops"),
        (dict(num_local_crops=2.5), "num_local_crops"),
        (dict(global_crop_scale=(0.5, 0.4)), "global_crop_scale"),
        (dict(local_crop_scale=(0.0, 0.4)), "local_crop_scale"),
        (dict(local_crop_scale=(0.05, 1.5)), "local_crop_scale"),
        (dict(flip_prob=1.5), "flip_prob"),
        (dict(jitter_prob=-0.1), "jitter_prob"),
        (dict(grayscale_prob=2.0), "grayscale_prob"),
        (dict(blur_prob=(1.0,)), "blur_prob"),
        (dict(blur_prob=(1.0, 1.1)), r"blur_prob\[1\]"),
        (dict(local_blur_prob=-0.5), "local_blur_prob"),
        (dict(solarize_prob=(0.0, 2.0)), r"solarize_prob\[1\]"),
        (dict(local_solarize_prob=1.5), "local_solarize_prob"),
        (dict(blur_sigma=(0.0, 2.0)), "blur_sigma"),
        (dict(blur_kernel_size=4), "blur_kernel_size"),
        (dict(jitter=(0.4, 0.4, 0.2, 0.6)), "jitter"),
        (dict(mean=(0.5,), std=(0.5,)), "grayscale_prob"),  # saturation/hue/grayscale on one channel
        (dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5)), "mean and std"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DINOImageViews(**kwargs)
