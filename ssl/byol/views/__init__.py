"""View pipelines (and the deterministic preprocessing they end with) that run batched on the device."""

from .audio import BYOLAv1Views, BYOLAViews
from .audio_frontend import LogMelPreprocess, LogMelSpectrogram
from .image import BYOLImageViews, GreyImageViews, ImagePreprocess, SmallImageViews
from .tabular import TabularCorruptionViews
from .tabular_masks import TabularMasks

__all__ = [
    "BYOLAViews", "BYOLAv1Views", "BYOLImageViews", "GreyImageViews", "ImagePreprocess", "LogMelPreprocess",
    "LogMelSpectrogram", "SmallImageViews", "TabularCorruptionViews", "TabularMasks",
]
