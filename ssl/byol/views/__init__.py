"""View pipelines that run batched on the device."""

from .image import BYOLImageViews, GreyImageViews, SmallImageViews

__all__ = ["BYOLImageViews", "GreyImageViews", "SmallImageViews"]
