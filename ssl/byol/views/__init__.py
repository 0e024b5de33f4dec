"""View pipelines (and the deterministic preprocessing they end with) that run batched on the device."""

from .audio import BYOLAv1Views, BYOLAViews
from .audio_frontend import LogMelPreprocess, LogMelSpectrogram
from .audio_multi_crop import DINOAudioViews
from .image import BYOLImageViews, GreyImageViews, ImagePreprocess, SmallImageViews
from .jepa_masks import MultiBlockMasks, TimeFrequencyMasks
from .multi_crop import DINOGreyImageViews, DINOImageViews, DINOSmallImageViews, MultiCrops
from .tabular import TabularCorruptionViews
from .tabular_masks import TabularMasks

__all__ = [
    "BYOLAViews", "BYOLAv1Views", "BYOLImageViews", "DINOAudioViews", "DINOGreyImageViews", "DINOImageViews",
    "DINOSmallImageViews", "GreyImageViews", "ImagePreprocess", "LogMelPreprocess", "LogMelSpectrogram",
    "MultiBlockMasks", "MultiCrops", "SmallImageViews", "TabularCorruptionViews", "TabularMasks",
    "TimeFrequencyMasks",
]
