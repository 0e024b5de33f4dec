"""Inputs of the JEPA methods: one lightly augmented view per sample, computed on the device. Masked prediction
needs no second view and no photometric augmentation; the masks (:mod:`byol.views.jepa_masks`) are the task."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .audio import BYOLAViews
from .image import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess, crop_and_colour_ops


class JEPAImageViews(nn.Module):
    """I-JEPA's only augmentation (Assran et al. 2023, Sec. 4: random resized crops): uint8 images ``(B, C, H, W)``
    to normalised float32 crops ``(B, C, size, size)`` of area ``crop_scale`` (aspect ratio 3/4-4/3, log-uniform),
    optionally flipped; per-sample parameters, nothing read back from the device.

    Args:
        size: side of the square crops (the encoder's ``img_size``).
        mean, std: per-channel normalisation; their length fixes the channel count.
        crop_scale: range of the crop area as a fraction of the image (I-JEPA: 0.3 - 1.0).
        flip_prob: probability of a horizontal flip (I-JEPA: none).
    """

    def __init__(
        self,
        size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        flip_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.size = size
        self.preprocessing = ImagePreprocess(size, mean, std)
        self.view = nn.Sequential(*crop_and_colour_ops(size, crop_scale, flip_prob, (0.0, 0.0, 0.0, 0.0), 0.0, 0.0))

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of what the encoder sees."""
        return self.size, self.size

    def forward(self, images: Tensor) -> Tensor:
        with torch.autocast(device_type=images.device.type, enabled=False):
            return self.preprocessing.normalise(self.view(self.preprocessing.check(images)))

    def preprocess(self, images: Tensor) -> Tensor:
        """The deterministic evaluation transform (see :class:`ImagePreprocess`)."""
        return self.preprocessing(images)


class JEPAAudioViews(BYOLAViews):
    """Pre-normalised log-mels ``(B, 1, F, T)`` of waveforms ``(B, L)``, one per clip and not augmented (the
    masked log-mel setting of M2D and A-JEPA: the data set's random segment is the only randomness): BYOL-A's
    front end and pre-normalisation (training-set statistics by default) without mixup, resize crop or fader.

    Args:
        kwargs: :class:`~byol.views.audio.BYOLAViews`' front-end and pre-normalisation options
            (``segment_seconds``, ``pre_norm``, ``norm_stats``, ``statistics_samples``, ``n_mels``, ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(mixup_ratio=0.0, fader_gain=None, **kwargs)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(F, T)`` of what the encoder sees."""
        return self.shape

    def forward(self, waveforms: Tensor, epoch: int | None = None) -> Tensor:
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            return self.pre_normalised(waveforms, epoch)
