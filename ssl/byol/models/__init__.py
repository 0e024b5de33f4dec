"""Encoders as plain ``nn.Module``s with a ``num_features`` attribute."""

from .timm_backbone import TimmBackbone

__all__ = ["TimmBackbone"]
