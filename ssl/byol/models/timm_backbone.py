"""Image backbones from timm, with a uniform feature interface."""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from .state import strict_load
from .tokens import Tokens, gather_tokens, replace_masked


class TimmBackbone(nn.Module):
    """A timm model without its classifier: images ``(B, C, H, W)`` to features ``(B, D)``; ViTs also give tokens
    (:meth:`tokens`, :meth:`pool`).

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

    @property
    def num_prefix_tokens(self) -> int:
        """``P``: a ViT's CLS and register tokens (0 for a ViT without them); only ViTs have tokens."""
        return self._vit().num_prefix_tokens

    @property
    def grid(self) -> tuple[int, int]:
        """``(H_p, W_p)``, the patch grid of the ViT's configured input size (``img_size / patch_size``)."""
        return tuple(self._vit().patch_embed.grid_size)

    @property
    def token_dim(self) -> int:
        """``d``, the width of the ViT's tokens."""
        return self._vit().embed_dim

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H_p, W_p)``, the patch grid of an image of ``height x width`` pixels (ViTs only)."""
        patch_h, patch_w = self._vit().patch_embed.patch_size
        return height // patch_h, width // patch_w

    def tokens(
        self,
        images: torch.Tensor,
        keep: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> Tokens:
        """A ViT's output tokens, optionally for a subset of its patches (the token interface, :mod:`byol.models.tokens`).

        The patches are embedded and get their position embedding first; then ``keep`` selects the patches the
        blocks see (I-JEPA's context encoder sees only its context block), the CLS and register tokens are
        prepended as timm does, and the blocks and the final norm run. ``mask`` replaces the embeddings of
        masked patches by ``mask_token`` before the position embedding (iBOT, DINOv2), so a masked patch still
        knows where it is.

        Args:
            images: ``(B, C, H, W)``.
            keep: ``(B, K)`` patch indices in ``[0, N)`` (row-major over the ``(H_p, W_p)`` grid); ``None``: all.
            mask, mask_token: ``(B, N)`` bool and ``(d,)``.

        Returns:
            :class:`Tokens` with ``prefix`` ``(B, P, d)`` (CLS first, then registers) and ``patches`` ``(B, K, d)``.
        """
        vit = self._vit()
        x = vit.patch_embed(images)  # (B, N, d), or (B, H_p, W_p, d) with dynamic_img_size
        if mask is not None:
            x = replace_masked(x.reshape(x.shape[0], -1, x.shape[-1]), mask, mask_token).view_as(x)
        x = vit._pos_embed(x)  # (B, P + N, d): prefix tokens prepended, position embeddings added
        prefix, patches = x[:, : vit.num_prefix_tokens], x[:, vit.num_prefix_tokens :]
        if keep is not None:
            patches = gather_tokens(patches, keep)
        x = vit.norm(vit.blocks(vit.norm_pre(torch.cat([prefix, patches], dim=1))))
        return Tokens(x[:, : vit.num_prefix_tokens], x[:, vit.num_prefix_tokens :])

    def layer_tokens(self, images: torch.Tensor, layers: int) -> list[Tokens]:
        """The outputs of a ViT's last ``layers`` blocks on the whole image (data2vec's layer-averaged targets).

        The image is embedded as in :meth:`tokens` (patch embedding, position embedding and prefix tokens,
        ``norm_pre``) with every patch kept, then the blocks run one by one. Block outputs are taken **before**
        the final norm: ``self.model.norm(layer_tokens(x, 1)[-1].sequence)`` is ``tokens(x).sequence``.

        Args:
            images: ``(B, C, H, W)``.
            layers: how many of the top blocks to return, ``1 .. depth``.

        Returns:
            ``layers`` :class:`Tokens` in block order (the last block last), each with ``prefix`` ``(B, P, d)`` and
            ``patches`` ``(B, N, d)`` (all patches, row-major).
        """
        vit = self._vit()
        depth = len(vit.blocks)
        if not 1 <= layers <= depth:
            raise ValueError(f"layers must be in 1 .. depth = {depth}, got {layers}")
        x = vit.norm_pre(vit._pos_embed(vit.patch_embed(images)))  # (B, P + N, d)
        outputs = []
        for i, block in enumerate(vit.blocks):
            x = block(x)
            if i >= depth - layers:
                outputs.append(Tokens(x[:, : vit.num_prefix_tokens], x[:, vit.num_prefix_tokens :]))
        return outputs

    def pool(self, tokens: Tokens) -> torch.Tensor:
        """The features of :meth:`forward` from tokens, ``(B, num_features)``: timm's pooling (CLS token or the mean
        of the patches, as the model is configured) and its final norm, so ``pool(tokens(x)) == forward(x)``."""
        return self._vit().forward_head(tokens.sequence, pre_logits=True)

    def _vit(self) -> nn.Module:
        model = self.model
        if not all(hasattr(model, a) for a in ("patch_embed", "_pos_embed", "blocks", "num_prefix_tokens")):
            raise TypeError(f"tokens need a timm VisionTransformer; {self.name!r} has no patch tokens")
        return model

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
