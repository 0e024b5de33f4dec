"""View pipelines that run batched on the device."""

from .image import BYOLImageViews, GreyImageViews, ImagePreprocess, SmallImageViews

__all__ = ["BYOLImageViews", "GreyImageViews", "ImagePreprocess", "SmallImageViews"]
