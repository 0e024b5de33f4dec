"""Image backbones from timm, with a uniform feature interface."""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from .state import strict_load


class TimmBackbone(nn.Module):
    """A timm model without its classifier: images ``(B, C, H, W)`` to features ``(B, D)``.

    Args:
        name: any ``timm.list_models()`` name, e.g. ``"resnet50"``, ``"vit_small_patch16_224"``.
        in_chans: input channels (1 for grey images).
        cifar_stem: ResNets only: replace the 7x7 stride-2 stem convolution by a
            3x3 stride-1 one and drop the max-pool, the usual variant for 32x32
            images (He et al. 2016, Sec. 4.2).
        pretrained: load timm's pretrained weights (needs them cached locally or a network).
        model_kwargs: extra keyword arguments for ``timm.create_model`` (e.g.
            ``channels: [32, 64, 128, 256]`` for a narrow ResNet, ``drop_path_rate``).

    Attributes:
        num_features: ``D``, the feature dimension.
        model: the timm model; its ``state_dict`` is what export writes.
    """

    def __init__(
        self,
        name: str = "resnet50",
        in_chans: int = 3,
        cifar_stem: bool = False,
        pretrained: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not timm.is_model(name):
            raise ValueError(f"unknown timm model {name!r}; see timm.list_models()")
        self.name, self.in_chans, self.cifar_stem = name, in_chans, cifar_stem
        self.model_kwargs = dict(model_kwargs or {})
        self.model = timm.create_model(
            name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **self.model_kwargs
        )
        if cifar_stem:
            _to_cifar_stem(self.model, name)
        self.num_features: int = self.model.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, num_features)`` pooled features."""
        return self.model(images)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights under timm's own key names, so timm can load them directly."""
        return self.model.state_dict()

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Strictly load weights written by :meth:`export_state_dict`."""
        strict_load(self.model, state, "the exported weights")

    def export_config(self) -> dict[str, Any]:
        """Arguments that rebuild this architecture (used by backbone export)."""
        return {
            "class": "TimmBackbone",
            "name": self.name,
            "in_chans": self.in_chans,
            "cifar_stem": self.cifar_stem,
            "model_kwargs": self.model_kwargs,
            "num_features": self.num_features,
        }


def _to_cifar_stem(model: nn.Module, name: str) -> None:
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise ValueError(
            f"cifar_stem=True needs a ResNet with a single-conv stem (conv1 + maxpool); {name!r} has none"
        )
    model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
