import pytest
import torch

from byol.views.image import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BYOLImageViews,
    GreyImageViews,
    SmallImageViews,
    default_blur_kernel_size,
)

# Every random op off: the views reduce to float conversion and normalisation.
OFF = dict(
    crop_scale=(1.0, 1.0),
    flip_prob=0.0,
    jitter_prob=0.0,
    grayscale_prob=0.0,
    blur_prob=(0.0, 0.0),
    solarize_prob=(0.0, 0.0),
)


def _images(b: int = 4, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def _edge_image(size: int = 32) -> torch.Tensor:
    x = torch.zeros(2, 3, size, size, dtype=torch.uint8)
    x[..., size // 2 :] = 255
    return x


def test_shapes_and_dtypes() -> None:
    cases = [
        (BYOLImageViews(size=32), _images(4, 3, 48, 40)),
        (SmallImageViews(), _images(4, 3, 32, 32)),
        (GreyImageViews(), _images(4, 1, 28, 28)),
        (GreyImageViews(size=16, blur_prob=(1.0, 0.1)), _images(4, 1, 28, 28)),
    ]
    for views, x in cases:
        v1, v2 = views(x)
        s = views.size
        assert v1.shape == v2.shape == (4, x.shape[1], s, s)
        assert v1.dtype == v2.dtype == torch.float32
        assert views.preprocess(x).shape == (4, x.shape[1], s, s)


def test_no_parameters_nothing_in_checkpoint() -> None:
    views = BYOLImageViews(size=32, solarize_prob=(0.5, 0.5))
    assert list(views.parameters()) == []
    assert views.state_dict() == {}


def test_views_differ_per_sample_and_reproducible() -> None:
    views = SmallImageViews()
    x = _images(1).expand(6, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    v1, v2 = views(x)
    assert not torch.allclose(v1, v2)
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.allclose(v1[i], v1[j])
    torch.manual_seed(0)
    w1, w2 = views(x)
    assert torch.equal(v1, w1) and torch.equal(v2, w2)


def test_normalisation_last() -> None:
    x = _images()
    views = SmallImageViews(**OFF)
    expected = _normalise(x.float() / 255, CIFAR10_MEAN, CIFAR10_STD)
    v1, v2 = views(x)
    torch.testing.assert_close(v1, expected)
    torch.testing.assert_close(v2, expected)


def test_blur_only_in_view_1() -> None:
    x = _edge_image()
    views = SmallImageViews(**{**OFF, "blur_prob": (1.0, 0.0), "blur_sigma": (1.0, 2.0)})
    expected = _normalise(x.float() / 255, CIFAR10_MEAN, CIFAR10_STD)
    v1, v2 = views(x)
    assert (v1 - expected).abs().amax() > 0.1
    torch.testing.assert_close(v2, expected)


def test_solarize_only_in_view_2() -> None:
    # Threshold 0.5 is applied as ``x >= 0.5 -> 1 - x`` (paper, torchvision, kornia); at x == 0.5 both branches
    # agree, and x = k / 255 never equals 0.5, so the convention cannot change the result here.
    x = _images()
    views = SmallImageViews(**{**OFF, "solarize_prob": (0.0, 1.0)})
    unit = x.float() / 255
    v1, v2 = views(x)
    torch.testing.assert_close(v1, _normalise(unit, CIFAR10_MEAN, CIFAR10_STD))
    solarized = torch.where(unit >= 0.5, 1 - unit, unit)
    torch.testing.assert_close(v2, _normalise(solarized, CIFAR10_MEAN, CIFAR10_STD))


def test_grey_jitter_changes_intensity_only() -> None:
    x = _images(4, 1, 28, 28)
    views = GreyImageViews(**{**OFF, "jitter_prob": 1.0})
    v1, _ = views(x)
    assert not torch.allclose(v1, _normalise(x.float() / 255, (0.5,), (0.5,)))


def test_runs_under_autocast() -> None:
    views = BYOLImageViews(size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v1, v2 = views(_images(2, 3, 40, 40))
        p = views.preprocess(_images(2, 3, 40, 40))
    assert v1.dtype == v2.dtype == p.dtype == torch.float32


def test_crop_is_antialiased() -> None:
    # A full-image crop shrunk 3x: plain bilinear sampling lands on pixel centres and returns the checkerboard
    # unchanged (pure aliasing); the anti-alias prefilter averages it towards grey.
    checker = (torch.arange(96).view(-1, 1) + torch.arange(96)) % 2 * 255
    x = checker.to(torch.uint8).expand(1, 3, -1, -1)
    v1, _ = BYOLImageViews(size=32, mean=(0.0,) * 3, std=(1.0,) * 3, **OFF)(x)
    assert (v1 - 0.5).abs().amax() < 0.1


def test_preprocess_centre_crop() -> None:
    x = _images(2, 3, 40, 37)
    views = BYOLImageViews(size=32)
    # torchvision CenterCrop offsets: round((40 - 32) / 2) = 4, round((37 - 32) / 2) = round(2.5) = 2.
    crop = x[..., 4:36, 2:34].float() / 255
    torch.testing.assert_close(views.preprocess(x), _normalise(crop, IMAGENET_MEAN, IMAGENET_STD))


def test_preprocess_same_size_is_normalise_only() -> None:
    x = _images()
    views = SmallImageViews()
    torch.testing.assert_close(views.preprocess(x), _normalise(x.float() / 255, CIFAR10_MEAN, CIFAR10_STD))


def test_preprocess_resizes_small_input_up() -> None:
    x = _images(2, 3, 16, 24)
    out = SmallImageViews().preprocess(x)
    assert out.shape == (2, 3, 32, 32)
    # A constant image stays constant through the bilinear resize.
    flat = SmallImageViews().preprocess(torch.full((1, 3, 16, 16), 128, dtype=torch.uint8))
    expected = _normalise(torch.full((3, 1, 1), 128 / 255), CIFAR10_MEAN, CIFAR10_STD).expand(3, 32, 32)
    torch.testing.assert_close(flat[0], expected)


def test_float_input_is_type_error() -> None:
    views = SmallImageViews()
    with pytest.raises(TypeError, match="uint8"):
        views(torch.rand(2, 3, 32, 32))
    with pytest.raises(TypeError, match="uint8"):
        views.preprocess(torch.rand(2, 3, 32, 32))


def test_channel_mismatch_is_value_error() -> None:
    with pytest.raises(ValueError, match=r"1 channels.*3 entries"):
        SmallImageViews()(_images(2, 1, 32, 32))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(mean=(0.5, 0.5), std=(0.5,)),
        dict(flip_prob=1.5),
        dict(blur_prob=(1.0, -0.1)),
        dict(solarize_prob=(0.0, 2.0)),
        dict(mean=(0.5,), std=(0.5,)),  # saturation/hue/grayscale on one channel
    ],
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        BYOLImageViews(**kwargs)


def test_default_blur_kernel_size() -> None:
    assert default_blur_kernel_size(224) == 23
    assert default_blur_kernel_size(96) == 9
    for size in range(8, 512):
        k = default_blur_kernel_size(size)
        assert k % 2 == 1 and k >= 3
        assert abs(k - size / 10) <= 1 or k == 3
    kernel = BYOLImageViews().view1[-1].kernel_size
    assert kernel == 23


def test_gaussian_blur_matches_torchvision_per_sample() -> None:
    import torchvision.transforms.v2.functional as TF

    from byol.views.image import gaussian_blur

    x = torch.rand(3, 3, 20, 17, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 0.8, 2.0])
    ours = gaussian_blur(x, sigma, 9)
    reference = torch.stack([TF.gaussian_blur(x[i], [9, 9], [s.item(), s.item()]) for i, s in enumerate(sigma)])
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)


def test_random_blur_draws_sigma_per_sample_and_checks_its_arguments() -> None:
    from byol.views.image import _RandomGaussianBlur, gaussian_blur

    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(_RandomGaussianBlur(5, (0.1, 2.0), p=0.0)(x), x)
    torch.manual_seed(3)
    blurred = _RandomGaussianBlur(5, (0.1, 2.0), p=1.0)(x)
    torch.manual_seed(3)
    sigma = 0.1 + 1.9 * torch.rand(5)  # the same draw the module makes first
    torch.testing.assert_close(blurred, gaussian_blur(x, sigma, 5))
    with pytest.raises(ValueError, match="odd"):
        _RandomGaussianBlur(4, (0.1, 2.0), p=1.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        _RandomGaussianBlur(5, (0.0, 2.0), p=1.0)
