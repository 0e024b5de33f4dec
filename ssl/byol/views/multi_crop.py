"""DINO multi-crop views of images, computed on the device with batched kornia and torch ops.

DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers", ICCV; reference code
``facebookresearch/dino``, ``main_dino.py``, ``DataAugmentationDINO``) trains on two *global* crops and ``L``
*local* crops of every image. Every crop runs random resized crop -> horizontal flip (0.5) -> colour jitter
(brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, with probability 0.8) -> grayscale (0.2), then:

=====================  =========  ==========  ===============  ============  ==========
crop                   output     area        Gaussian blur    solarize      count
=====================  =========  ==========  ===============  ============  ==========
global crop 1          224 px     0.4 - 1.0   1.0              0.0           1
global crop 2          224 px     0.4 - 1.0   0.1              0.2           1
local crops            96 px      0.05 - 0.4  0.5              0.0           ``L`` (8)
=====================  =========  ==========  ===============  ============  ==========

The blur's sigma is uniform in ``[0.1, 2.0]`` output pixels (PIL's ``GaussianBlur`` radius in the reference);
solarization inverts pixels from 0.5 (PIL's threshold 128) up; normalisation with the ImageNet mean and std comes
last. Crop aspect ratios are log-uniform in ``[3/4, 4/3]``. Global crops of area 0.4-1 are the reference's default
(``--global_crops_scale 0.4 1``); 0.14-1 (with local crops of 0.05-0.14) is the multi-crop setting of the SwAV paper
(Caron et al. 2020), which the reference's README uses for ResNet-50 and its ``--help`` recommends without local
crops. The reference's default is 8 local crops; the paper's best ViT-S/16 result uses 10.

NOTE: the reference resizes crops bicubically with PIL; here every crop is resized bilinearly with antialiasing
(:mod:`byol.views.resized_crop`, torchvision's ``resized_crop`` on tensors), as the BYOL views do.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .image import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocess,
    _check_prob,
    _RandomResizedCrop,
    blur_and_solarize_ops,
    crop_and_colour_ops,
    image_view,
)

NUM_GLOBAL_CROPS = 2


class MultiCrops(NamedTuple):
    """Crops of a batch of B samples, crop-major: rows [i*B:(i+1)*B] are crop i of every sample."""

    global_crops: Tensor  # (G * B, C, S, S) for images; (G * B, 1, F, T_global) for log-mels
    local_crops: Tensor  # (L * B, C, s, s); (L * B, 1, F, T_local); L may be 0 -> a tensor with 0 rows


def dino_blur_kernel_size(size: int, sigma_max: float) -> int:
    """Taps of a Gaussian blur that reach ``3 * sigma_max`` pixels on each side: ``2 * ceil(3 sigma_max) + 1``
    (13 for sigma up to 2), at most ``2 * size - 1`` (reflect padding needs a pad below the image side)."""
    return min(2 * math.ceil(3 * sigma_max) + 1, 2 * size - 1)


def multi_crop(view: nn.Sequential, images: Tensor, repeats: int) -> Tensor:
    """``repeats`` crops of each of ``images`` ``(B, C, H, W)`` through ``view`` (a crop first, see
    :func:`byol.views.image.crop_and_colour_ops`), crop-major ``(repeats * B, C, s, s)``: the crop draws
    ``repeats * B`` boxes over the ``B`` images, then every other op runs once over all the crops."""
    crop, *ops = view
    assert isinstance(crop, _RandomResizedCrop)
    x = crop.crops(images, repeats)
    for op in ops:
        x = op(x)
    return x


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_scale(name: str, scale: tuple[float, float]) -> None:
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"{name} must be an area range (low, high) with 0 < low <= high <= 1, got {scale}")


class DINOImageViews(nn.Module):
    """DINO's multi-crop views of a batch of uint8 images ``(B, C, H, W)``, computed on the images' device.

    Defaults are DINO's ImageNet recipe (see the module docstring): 2 global crops of ``global_size`` (224) and
    ``num_local_crops`` (8, the reference's default; the paper's best ViT-S/16 result uses 10) local crops of
    ``local_size`` (96). Every random parameter is drawn per crop from torch's global RNG, so two crops of the
    same image, and the crops of two copies of one image, differ.

    One batched pipeline per size: the two global crops of the batch are ``2B`` crops drawn over the ``B`` images
    (one set of crop boxes; the images are not copied), then flip, colour jitter and grayscale run once over the
    ``2B`` rows; blur and solarize, whose probabilities differ between the two global crops, run on each half.
    The local crops are likewise ``L * B`` crops through one pipeline. As in :class:`BYOLImageViews`, an op of
    probability ``p`` is computed only for the crops that draw it (:mod:`byol.views.random_apply`), the colour
    jitter's random order of adjustments is drawn per call (shared by the crops of one pipeline), nothing reads
    a value back from the device, and augmentation runs in float32, also under ``torch.autocast``. The module has
    no parameters and no persistent buffers.

    The blur kernel reaches ``3 * blur_sigma[1]`` pixels on each side (:func:`dino_blur_kernel_size`: 13 taps)
    at both sizes. NOTE: the reference blurs with PIL (sigma in pixels, no kernel size); 13 taps keep all but
    0.3% of the Gaussian's mass at sigma 2 and are cheaper than BYOL's 10%-of-the-side kernel (23 taps at 224 px).

    Args:
        global_size: side ``S`` of the square global crops (and of :meth:`preprocess`'s output).
        local_size: side ``s`` of the square local crops.
        num_local_crops: local crops ``L`` per image; 0 turns multi-crop off.
        mean: per-channel mean for normalisation; its length fixes the expected channel count ``C``.
        std: per-channel std for normalisation, same length as ``mean``.
        global_crop_scale: range of a global crop's area as a fraction of the image area (DINO's default
            ``(0.4, 1)``; ``(0.14, 1)`` is the multi-crop paper setting, and the reference's advice without local
            crops).
        local_crop_scale: range of a local crop's area as a fraction of the image area.
        flip_prob: probability of a horizontal flip (every crop).
        jitter: max intensity of brightness, contrast, saturation and hue jitter.
        jitter_prob: probability of colour jitter.
        grayscale_prob: probability of converting to grayscale.
        blur_prob: Gaussian blur probability of global crop 1 and global crop 2.
        local_blur_prob: Gaussian blur probability of a local crop.
        blur_sigma: range of the blur's standard deviation, in output pixels.
        blur_kernel_size: taps of the blur kernel (odd) at both sizes; ``None``: :func:`dino_blur_kernel_size`.
        solarize_prob: solarization probability of global crop 1 and global crop 2.
        local_solarize_prob: solarization probability of a local crop.
        compile_jitter: fuse each colour adjustment with ``torch.compile`` (see :class:`RandomColorJitter`).

    Saturation, hue and grayscale need RGB images: with ``len(mean) != 3`` they must be 0.

    Attributes:
        preprocessing: :class:`ImagePreprocess` of ``global_size``, the deterministic evaluation transform
            (exported with the backbone).
    """

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 96,
        num_local_crops: int = 8,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        global_crop_scale: tuple[float, float] = (0.4, 1.0),
        local_crop_scale: tuple[float, float] = (0.05, 0.4),
        flip_prob: float = 0.5,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        jitter_prob: float = 0.8,
        grayscale_prob: float = 0.2,
        blur_prob: tuple[float, float] = (1.0, 0.1),
        local_blur_prob: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_kernel_size: int | None = None,
        solarize_prob: tuple[float, float] = (0.0, 0.2),
        local_solarize_prob: float = 0.0,
        compile_jitter: bool = False,
    ) -> None:
        super().__init__()
        for name, size in (("global_size", global_size), ("local_size", local_size)):
            if not _is_int(size, 1):
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        if not _is_int(num_local_crops, 0):
            raise ValueError(f"num_local_crops must be a non-negative integer, got {num_local_crops!r}")
        _check_scale("global_crop_scale", global_crop_scale)
        _check_scale("local_crop_scale", local_crop_scale)
        for name, pair in (("blur_prob", blur_prob), ("solarize_prob", solarize_prob)):
            if len(pair) != NUM_GLOBAL_CROPS:
                raise ValueError(f"{name} must give one probability per global crop (2), got {pair}")
        for name, value in [
            ("flip_prob", flip_prob),
            ("jitter_prob", jitter_prob),
            ("grayscale_prob", grayscale_prob),
            *((f"blur_prob[{i}]", p) for i, p in enumerate(blur_prob)),
            ("local_blur_prob", local_blur_prob),
            *((f"solarize_prob[{i}]", p) for i, p in enumerate(solarize_prob)),
            ("local_solarize_prob", local_solarize_prob),
        ]:
            _check_prob(name, value)
        if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5:
            raise ValueError(f"jitter must be 4 strengths >= 0 (brightness, contrast, saturation, hue <= 0.5), "
                             f"got {jitter}")
        if len(blur_sigma) != 2 or not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ValueError(f"blur_sigma must be a range (low, high) with 0 < low <= high, got {blur_sigma}")
        if blur_kernel_size is not None and not (_is_int(blur_kernel_size, 1) and blur_kernel_size % 2 == 1):
            raise ValueError(f"blur_kernel_size must be a positive odd integer or None, got {blur_kernel_size!r}")
        if len(mean) != 3 and (jitter[2] > 0 or jitter[3] > 0 or grayscale_prob > 0):
            raise ValueError(
                f"saturation/hue jitter and grayscale need 3 channels, but mean/std give {len(mean)}: "
                "set jitter[2], jitter[3] and grayscale_prob to 0 (see DINOGreyImageViews)"
            )
        self.global_size, self.local_size, self.num_local_crops = global_size, local_size, num_local_crops
        self.size = global_size
        self.preprocessing = ImagePreprocess(global_size, mean, std)
        colour = dict(flip_prob=flip_prob, jitter=jitter, jitter_prob=jitter_prob, grayscale_prob=grayscale_prob,
                      compile_jitter=compile_jitter)

        def kernel(size: int) -> int:
            return dino_blur_kernel_size(size, blur_sigma[1]) if blur_kernel_size is None else blur_kernel_size

        # global crops: crop and colour over all 2B rows, then blur and solarize per global crop
        self.global_view = nn.Sequential(*crop_and_colour_ops(global_size, global_crop_scale, **colour))
        self.global_finish = nn.ModuleList(
            nn.Sequential(*blur_and_solarize_ops(kernel(global_size), blur_sigma, blur_prob[i], solarize_prob[i]))
            for i in range(NUM_GLOBAL_CROPS)
        )
        self.local_view = image_view(
            local_size, crop_scale=local_crop_scale, blur_prob=local_blur_prob, blur_sigma=blur_sigma,
            blur_kernel_size=kernel(local_size), solarize_prob=local_solarize_prob, **colour,
        )

    def forward(self, images: Tensor) -> MultiCrops:
        """Normalised float32 crops of uint8 images ``(B, C, H, W)``: :class:`MultiCrops` of global crops
        ``(2 * B, C, global_size, global_size)`` and local crops ``(num_local_crops * B, C, local_size,
        local_size)``, crop-major (row ``i * B + b`` is crop ``i`` of image ``b``)."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = self.preprocessing.check(images)  # uint8: the crops are resized from it
            b = x.shape[0]
            crops = multi_crop(self.global_view, x, NUM_GLOBAL_CROPS)
            # blur and solarize per global crop, each half normalised into its rows of the output (the crops may
            # be a broadcast view, e.g. all grayscale, so they are not written in place)
            global_crops = torch.empty(crops.shape, dtype=crops.dtype, device=crops.device)
            mean, std = self.preprocessing.mean, self.preprocessing.std
            for i, finish in enumerate(self.global_finish):
                rows = slice(i * b, (i + 1) * b)
                torch.sub(finish(crops[rows]), mean, out=global_crops[rows]).div_(std)
            local_crops = multi_crop(self.local_view, x, self.num_local_crops)
            return MultiCrops(global_crops, self.preprocessing.normalise(local_crops))

    def preprocess(self, images: Tensor) -> Tensor:
        """The deterministic evaluation transform (see :class:`ImagePreprocess`): ``(B, C, global_size,
        global_size)``."""
        return self.preprocessing(images)


class DINOSmallImageViews(DINOImageViews):
    """DINO multi-crop views for CIFAR-size (32 px) RGB images: 32 px global and 16 px local crops, CIFAR-10
    mean/std, no Gaussian blur, otherwise DINO's recipe (solarization 0.2 on global crop 2 kept).

    The public CIFAR-10 DINO recipes train without local crops: solo-learn (``scripts/pretrain/cifar/dino.yaml``
    with ``augmentations/asymmetric.yaml``: two 32 px crops of area 0.08-1, no blur, solarization 0.0 / 0.2) and
    lightly's CIFAR-10 benchmark (``DINOTransform(global_crop_size=32, n_local_views=0, gaussian_blur=(0, 0, 0))``).
    Both drop blur, as SimCLR (Chen et al. 2020, Appendix B.9) does for 32 px images. Here the local crops are
    kept at half the global side, as DINO's 96 px are about half of 224; ``num_local_crops=0`` with
    ``global_crop_scale=(0.14, 1.0)`` is the two-crop setting.
    """

    def __init__(
        self,
        global_size: int = 32,
        local_size: int = 16,
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
        blur_prob: tuple[float, float] = (0.0, 0.0),
        local_blur_prob: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(global_size=global_size, local_size=local_size, mean=mean, std=std, blur_prob=blur_prob,
                         local_blur_prob=local_blur_prob, **kwargs)


class DINOGreyImageViews(DINOImageViews):
    """DINO multi-crop views for 1-channel images, normalised with mean 0.5 and std 0.5; the sizes suit the 8x8
    ``digits`` upsampled to 16 px: 16 px global and 8 px local crops.

    Saturation, hue and grayscale are undefined for one channel, so only brightness/contrast jitter remains;
    blur is off (see :class:`DINOSmallImageViews`), solarization 0.2 on global crop 2 kept. As for
    :class:`GreyImageViews`, the digits recipe sets its crop range and turns flips off in its config
    (``configs/byol_digits.yaml``: ``crop_scale: [0.3, 1.0]``, ``flip_prob: 0.0``: digits are not mirror
    symmetric).
    """

    def __init__(
        self,
        global_size: int = 16,
        local_size: int = 8,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.5,),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.0, 0.0),
        grayscale_prob: float = 0.0,
        blur_prob: tuple[float, float] = (0.0, 0.0),
        local_blur_prob: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(global_size=global_size, local_size=local_size, mean=mean, std=std, jitter=jitter,
                         grayscale_prob=grayscale_prob, blur_prob=blur_prob, local_blur_prob=local_blur_prob,
                         **kwargs)
