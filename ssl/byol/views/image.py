"""BYOL image views, computed on the device with batched kornia and torch ops.

The augmentation recipe of BYOL (Grill et al. 2020, Appendix B, Table 6); view 1 is ``T``, view 2 is ``T'``:

=====================================  =========  =========
Parameter                              ``T``      ``T'``
=====================================  =========  =========
Random resized crop probability        1.0        1.0
Horizontal flip probability            0.5        0.5
Colour jitter probability              0.8        0.8
Brightness adjustment max intensity    0.4        0.4
Contrast adjustment max intensity      0.4        0.4
Saturation adjustment max intensity    0.2        0.2
Hue adjustment max intensity           0.1        0.1
Colour dropping (grayscale) prob.      0.2        0.2
Gaussian blurring probability          1.0        0.1
Solarization probability               0.0        0.2
=====================================  =========  =========

Crops cover a uniform fraction of the area in ``[0.08, 1]`` with aspect ratio in ``[3/4, 4/3]`` (log-uniform), and
are resized to 224x224. The blur has sigma uniform in ``[0.1, 2.0]`` and a kernel 10% of the image side (23 px).
Solarization maps ``x -> x if x < 0.5 else 1 - x`` on ``[0, 1]`` images. Normalisation with the dataset's channel
mean and std comes last.
"""

from __future__ import annotations

import math
from typing import Any

import kornia.augmentation as K
import torch
from kornia.geometry.transform import resize
from torch import Tensor, nn

from .color_jitter import RandomColorJitter, grayscale
from .random_apply import apply_with_probability
from .resized_crop import resize_crops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def default_blur_kernel_size(size: int) -> int:
    """The odd integer nearest to ``size / 10`` (ties round up), at least 3: 23 for 224, 9 for 96, 3 for 32."""
    return max(3, 2 * math.floor((size / 10 - 1) / 2 + 0.5) + 1)


class _RandomResizedCrop(K.RandomResizedCrop):
    """kornia's ``RandomResizedCrop`` parameters (per-sample area and aspect ratio, integer boxes drawn on the
    host), every crop resized by :func:`byol.views.resized_crop.resize_crops`: antialiased bilinear, as
    torchvision's ``RandomResizedCrop`` on tensors, from uint8 or ``[0, 1]`` float images to ``[0, 1]`` float.
    :meth:`crops` draws several crops of every image (multi-crop views). The parameters of the last call are kept
    in ``_params`` as kornia's ``forward`` keeps them.
    """

    def forward(self, images: Tensor) -> Tensor:
        """One crop of each of ``images`` ``(B, C, H, W)``: ``(B, C, h, w)`` float in ``[0, 1]``."""
        return self.crops(images, 1)

    def crops(self, images: Tensor, repeats: int) -> Tensor:
        """``repeats`` crops of each of ``images`` ``(B, C, H, W)``, each with its own parameters, crop-major:
        ``(repeats * B, C, h, w)`` whose row ``i * B + b`` is crop ``i`` of image ``b``; the images are not copied
        per crop."""
        self._params = self.forward_parameters(torch.Size((repeats * images.shape[0], *images.shape[1:])))
        corners = self._params["src"]  # (N, 4, 2) x, y of each crop's corners, pixel i covering [i, i + 1)
        boxes = torch.cat([corners.amin(dim=1), corners.amax(dim=1) + 1], dim=1)
        return resize_crops(images, boxes, tuple(int(v) for v in self.flags["size"]))


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur images ``(B, C, H, W)`` with a Gaussian of per-sample ``sigma`` ``(B,)`` pixels: a normalised kernel of
    ``kernel_size`` taps (odd), applied along rows then columns, reflect-padded (torchvision's ``gaussian_blur``).
    One grouped convolution per axis for the whole batch."""
    b, c, h, w = x.shape
    offsets = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - (kernel_size - 1) / 2
    kernel = torch.exp(-0.5 * (offsets / sigma.to(x.dtype)[:, None]).square())
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B * C, K)
    pad = kernel_size // 2
    y = nn.functional.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = nn.functional.conv2d(y, kernel.view(b * c, 1, 1, kernel_size), groups=b * c)
    y = nn.functional.conv2d(y, kernel.view(b * c, 1, kernel_size, 1), groups=b * c)
    return y.view(b, c, h, w)


class _RandomGaussianBlur(nn.Module):
    """Gaussian blur with sigma uniform in ``sigma`` per sample, applied with probability ``p``, computed for the
    blurred samples only (no device reads: kornia's blur checks its sigma on the host, which on a GPU waits for
    every queued kernel)."""

    def __init__(self, kernel_size: int, sigma: tuple[float, float], p: float) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd integer, got {kernel_size}")
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"blur_sigma must be a range (low, high) with 0 < low <= high, got {sigma}")
        self.kernel_size, self.sigma, self.p = kernel_size, sigma, p

    def forward(self, x: Tensor) -> Tensor:
        return apply_with_probability(x, self.p, self.blur)

    def blur(self, x: Tensor) -> Tensor:
        """Every sample of ``(n, C, H, W)`` blurred with its own sigma."""
        low, high = self.sigma
        sigma = low + (high - low) * torch.rand(x.shape[0], device=x.device)
        return gaussian_blur(x, sigma, self.kernel_size)


class _RandomSolarize(nn.Module):
    """Per-sample solarization at threshold 0.5 of ``[0, 1]`` images, applied with probability ``p`` (computed for
    those samples only).

    Pixels ``>= 0.5`` become ``1 - x`` (the convention of the BYOL paper, torchvision and kornia; at exactly 0.5 both
    branches give 0.5, so ``>=`` versus ``>`` makes no difference). Written here rather than with kornia's
    ``RandomSolarize`` because that one stores its ranges as buffers, which would land in checkpoints.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return apply_with_probability(x, self.p, solarize)


def solarize(x: Tensor) -> Tensor:
    """``x`` below 0.5, ``1 - x`` from 0.5 on, for ``[0, 1]`` images: ``min(x, 1 - x)``, which is that (and
    several times cheaper than a ``torch.where`` on a CPU)."""
    return torch.minimum(x, 1 - x)


class _RandomGrayscale(nn.Module):
    """Per-sample colour dropping with probability ``p``: RGB ``(B, 3, H, W)`` to its luma (torchvision's
    ITU-R 601-2 weights) repeated on the three channels, computed for those samples only."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return apply_with_probability(x, self.p, lambda s: grayscale(s).expand_as(s))


class _RandomHorizontalFlip(nn.Module):
    """Per-sample horizontal flip with probability ``p``, computed for those samples only."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return apply_with_probability(x, self.p, lambda s: s.flip(-1))


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def crop_and_colour_ops(
    size: int,
    crop_scale: tuple[float, float],
    flip_prob: float,
    jitter: tuple[float, float, float, float],
    jitter_prob: float,
    grayscale_prob: float,
    compile_jitter: bool = False,
) -> list[nn.Module]:
    """The first ops of a view, for ``[0, 1]`` images: random resized crop to ``size x size`` -> horizontal flip ->
    colour jitter -> grayscale. Ops whose probability (or every jitter strength) is 0 are not built; the crop is
    always first (multi-crop views call its :meth:`_RandomResizedCrop.crops`)."""
    ops: list[nn.Module] = [
        _RandomResizedCrop((size, size), scale=crop_scale, resample="bilinear", align_corners=False)
    ]
    if flip_prob > 0:
        ops.append(_RandomHorizontalFlip(flip_prob))
    if jitter_prob > 0 and any(jitter):
        ops.append(RandomColorJitter(*jitter, p=jitter_prob, compile=compile_jitter))
    if grayscale_prob > 0:
        ops.append(_RandomGrayscale(grayscale_prob))
    return ops


def blur_and_solarize_ops(
    blur_kernel_size: int, blur_sigma: tuple[float, float], blur_prob: float, solarize_prob: float
) -> list[nn.Module]:
    """The last ops of a view: Gaussian blur -> solarize, each built only if its probability is above 0."""
    ops: list[nn.Module] = []
    if blur_prob > 0:
        ops.append(_RandomGaussianBlur(blur_kernel_size, blur_sigma, p=blur_prob))
    if solarize_prob > 0:
        ops.append(_RandomSolarize(solarize_prob))
    return ops


def image_view(
    size: int,
    *,
    crop_scale: tuple[float, float],
    flip_prob: float,
    jitter: tuple[float, float, float, float],
    jitter_prob: float,
    grayscale_prob: float,
    blur_prob: float,
    blur_sigma: tuple[float, float],
    blur_kernel_size: int,
    solarize_prob: float,
    compile_jitter: bool = False,
) -> nn.Sequential:
    """One view of ``[0, 1]`` images ``(B, C, H, W)`` -> ``(B, C, size, size)``, every op with per-sample
    parameters: :func:`crop_and_colour_ops` then :func:`blur_and_solarize_ops`, in one flat ``nn.Sequential``.
    Normalisation is not part of it."""
    return nn.Sequential(
        *crop_and_colour_ops(size, crop_scale, flip_prob, jitter, jitter_prob, grayscale_prob, compile_jitter),
        *blur_and_solarize_ops(blur_kernel_size, blur_sigma, blur_prob, solarize_prob),
    )


class ImagePreprocess(nn.Module):
    """Deterministic evaluation transform: uint8 ``(B, C, H, W)`` to normalised float32 ``(B, C, size, size)``.

    Images whose short side is below ``size`` are first resized up (bilinear, aspect ratio kept) so that it
    equals ``size``; then the centre ``size x size`` crop is taken (torchvision's ``CenterCrop`` offsets), scaled
    to ``[0, 1]`` and normalised with ``mean``/``std``. This is what an exported image backbone expects.
    """

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        self.size = size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), persistent=False)

    def check(self, images: Tensor) -> Tensor:
        """``images`` after checking that they are uint8 ``(B, C, H, W)`` with the expected channel count ``C``."""
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {images.dtype}: the dataset must yield uint8 tensors")
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        if images.shape[1] != self.mean.numel():
            raise ValueError(
                f"images have {images.shape[1]} channels but mean/std have {self.mean.numel()} entries"
            )
        return images

    def to_unit_float(self, images: Tensor) -> Tensor:
        """Checked uint8 ``(B, C, H, W)`` images (see :meth:`check`) scaled to ``[0, 1]``."""
        return self.check(images).float() / 255

    def normalise(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def forward(self, images: Tensor) -> Tensor:
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = self.to_unit_float(images)
            s = self.size
            if min(x.shape[-2:]) < s:
                x = resize(x, s, interpolation="bilinear", side="short", align_corners=False)
            h, w = x.shape[-2:]
            top, left = int(round((h - s) / 2)), int(round((w - s) / 2))
            return self.normalise(x[..., top : top + s, left : left + s])

    def export_config(self) -> dict[str, Any]:
        """Arguments that rebuild this transform (stored in an exported backbone's config.json)."""
        return {"class": "ImagePreprocess", "size": self.size, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist()}


class BYOLImageViews(nn.Module):
    """Two BYOL views of a batch of uint8 images, computed on the images' device.

    Each view runs, with random parameters drawn per sample: random resized crop (bilinear, anti-aliased when
    shrinking) -> horizontal flip -> colour jitter (with probability ``jitter_prob``) -> random grayscale ->
    Gaussian blur -> solarize -> normalisation with ``mean``/``std``. The views differ only in the blur and
    solarize probabilities (see the module docstring for the paper's table). Ops whose probability is 0 are not
    built. An op with probability ``p`` is computed for the samples that draw it only (a host-drawn binomial count,
    a device-drawn subset: :mod:`byol.views.random_apply`), so its cost is proportional to ``p``. Augmentation
    always runs in float32, also under ``torch.autocast``.

    Colour jitter is :class:`byol.views.color_jitter.RandomColorJitter` (torchvision's formulas; brightness,
    contrast and saturation factors uniform in ``[1 - s, 1 + s]``, hue shift uniform in ``[-h, h]``, drawn per
    sample). Like torchvision it applies the four adjustments in a random order, drawn anew on every call, but
    shares that one order across the batch (torchvision draws it per image), as kornia's ``ColorJitter`` does.
    Nothing in the pipeline reads a value back from the device, so on a GPU the host never waits for it.

    The module has no parameters and no persistent buffers, so it adds nothing to checkpoints.

    Args:
        size: side of the square output crops.
        mean: per-channel mean for normalisation; its length fixes the expected channel count ``C``.
        std: per-channel std for normalisation, same length as ``mean``.
        crop_scale: range of the crop area as a fraction of the image area.
        flip_prob: probability of a horizontal flip.
        jitter: max intensity of brightness, contrast, saturation and hue jitter.
        jitter_prob: probability of applying colour jitter.
        grayscale_prob: probability of converting to grayscale (colour dropping).
        blur_prob: Gaussian blur probability for view 1 and view 2.
        blur_sigma: range of the blur's standard deviation, in pixels.
        blur_kernel_size: side of the blur kernel; ``None`` uses :func:`default_blur_kernel_size` of ``size``.
        solarize_prob: solarization probability for view 1 and view 2.
        compile_jitter: fuse each colour adjustment with ``torch.compile`` (see :class:`RandomColorJitter`).

    Saturation, hue and grayscale need RGB images: with ``len(mean) != 3`` they must be 0.
    """

    def __init__(
        self,
        size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        flip_prob: float = 0.5,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        jitter_prob: float = 0.8,
        grayscale_prob: float = 0.2,
        blur_prob: tuple[float, float] = (1.0, 0.1),
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_kernel_size: int | None = None,
        solarize_prob: tuple[float, float] = (0.0, 0.2),
        compile_jitter: bool = False,
    ) -> None:
        super().__init__()
        for name, value in [
            ("flip_prob", flip_prob),
            ("jitter_prob", jitter_prob),
            ("grayscale_prob", grayscale_prob),
            *((f"blur_prob[{i}]", p) for i, p in enumerate(blur_prob)),
            *((f"solarize_prob[{i}]", p) for i, p in enumerate(solarize_prob)),
        ]:
            _check_prob(name, value)
        if len(mean) != 3 and (jitter[2] > 0 or jitter[3] > 0 or grayscale_prob > 0):
            raise ValueError(
                f"saturation/hue jitter and grayscale need 3 channels, but mean/std give {len(mean)}: "
                "set jitter[2], jitter[3] and grayscale_prob to 0 (see GreyImageViews)"
            )
        self.size = size
        self.preprocessing = ImagePreprocess(size, mean, std)
        kernel = default_blur_kernel_size(size) if blur_kernel_size is None else blur_kernel_size
        common = dict(crop_scale=crop_scale, flip_prob=flip_prob, jitter=jitter, jitter_prob=jitter_prob,
                      grayscale_prob=grayscale_prob, blur_sigma=blur_sigma, blur_kernel_size=kernel,
                      compile_jitter=compile_jitter)
        self.view1 = image_view(size, blur_prob=blur_prob[0], solarize_prob=solarize_prob[0], **common)
        self.view2 = image_view(size, blur_prob=blur_prob[1], solarize_prob=solarize_prob[1], **common)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Two augmented, normalised float32 views ``(B, C, size, size)`` of uint8 images ``(B, C, H, W)``."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = self.preprocessing.check(images)  # uint8: the crops are resized from it, then made float
            return self.preprocessing.normalise(self.view1(x)), self.preprocessing.normalise(self.view2(x))

    def preprocess(self, images: Tensor) -> Tensor:
        """The deterministic evaluation transform (see :class:`ImagePreprocess`)."""
        return self.preprocessing(images)


class SmallImageViews(BYOLImageViews):
    """BYOL views for CIFAR-size (32 px) RGB images, with CIFAR-10 mean/std.

    Follows solo-learn's CIFAR BYOL recipe: the paper's ImageNet recipe without Gaussian blur (as SimCLR, Chen et al.
    2020, Appendix B.9, drops blur for CIFAR-10's 32 px images), with solarization 0.0 / 0.2 kept.
    """

    def __init__(
        self,
        size: int = 32,
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
        blur_prob: tuple[float, float] = (0.0, 0.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(size=size, mean=mean, std=std, blur_prob=blur_prob, **kwargs)


class GreyImageViews(BYOLImageViews):
    """BYOL views for 1-channel images (MNIST, digits), normalised with mean 0.5 and std 0.5.

    Saturation, hue and grayscale are undefined for one channel, so only brightness/contrast jitter remains;
    blur is off by default as for small images (see :class:`SmallImageViews`), solarization 0.0 / 0.2 kept.
    """

    def __init__(
        self,
        size: int = 28,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.5,),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.0, 0.0),
        grayscale_prob: float = 0.0,
        blur_prob: tuple[float, float] = (0.0, 0.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            size=size, mean=mean, std=std, jitter=jitter, grayscale_prob=grayscale_prob, blur_prob=blur_prob, **kwargs
        )
