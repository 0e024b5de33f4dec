"""Transformer pieces shared by the tabular encoder and the JEPA predictor: fixed sine-cosine position encodings
and pre-norm blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sincos_encoding(positions: int, dim: int) -> Tensor:
    """Fixed 1-D sine-cosine encodings ``(positions, dim)`` (Vaswani et al. 2017; I-JEPA's layout: sines, cosines)."""
    if dim % 2:
        raise ValueError(f"sine-cosine encodings need an even width, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(grid: tuple[int, int], dim: int) -> Tensor:
    """Fixed 2-D sine-cosine encodings ``(H * W, dim)`` of a row-major ``(H, W)`` grid (as MAE and I-JEPA, which
    encode one axis in each half of the channels): here the first half the row, the second the column. A
    ``(1, W)`` grid gets the 1-D encoding of the column over all channels (:func:`sincos_encoding`)."""
    h, w = grid
    if h == 1:
        return sincos_encoding(w, dim)
    if dim % 4:
        raise ValueError(f"2-D sine-cosine encodings need a width divisible by 4, got {dim}")
    rows = sincos_encoding(h, dim // 2)[:, None].expand(h, w, dim // 2)
    cols = sincos_encoding(w, dim // 2)[None].expand(h, w, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(h * w, dim)


def transformer_blocks(dim: int, depth: int, heads: int, ffn_dim: int, dropout: float) -> nn.TransformerEncoder:
    """Pre-norm transformer blocks (GELU feed-forward), no final norm; linear layers as :func:`init_linear`."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    layer = nn.TransformerEncoderLayer(
        dim, heads, ffn_dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    blocks.apply(init_linear)
    return blocks


def init_linear(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights and zero biases, as the reference's ``trunc_normal`` init."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
