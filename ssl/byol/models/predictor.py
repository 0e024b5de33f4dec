"""The JEPA predictor: from a context encoder's tokens, predict the target encoder's tokens at other positions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .transformer import init_linear, sincos_2d, transformer_blocks


class JEPAPredictor(nn.Module):
    """A narrow transformer (I-JEPA's predictor; T-JEPA's, as in its reference) over the positions of a grid.

    Context tokens are projected from ``d`` to ``dim`` and get the fixed sine-cosine encoding of their position
    (prefix outputs, a ViT's CLS or the tabular [REG] tokens, get none); for each target set, one learned [MASK]
    token plus the encoding of each target position is appended; the outputs at the [MASK] positions are
    normalised and projected back to ``d``. Target sets are processed as separate sequences (the context is
    repeated), so they do not see each other.

    Positions index a row-major grid: image or log-mel patches ``(H_p, W_p)`` (2-D encodings), a table's features
    ``(1, F)`` (1-D encodings; an int ``F`` means the same).

    Args:
        grid: ``(H_p, W_p)`` of the encoder's positions, or the number of positions of a 1-D sequence.
        encoder_dim: ``d``, the encoder's token width.
        num_prefix_tokens: ``P``, the prefix outputs at the start of the context.
        dim: the predictor's width (narrower than ``d``).
        depth, heads, ffn_dim, dropout: its transformer blocks (pre-norm, GELU).
    """

    def __init__(
        self,
        grid: tuple[int, int] | int,
        encoder_dim: int,
        num_prefix_tokens: int,
        dim: int = 32,
        depth: int = 2,
        heads: int = 2,
        ffn_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.grid = (1, grid) if isinstance(grid, int) else tuple(grid)
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(encoder_dim, dim)
        self.register_buffer("feature_index", sincos_2d(self.grid, dim), persistent=False)  # (N, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.blocks = transformer_blocks(dim, depth, heads, ffn_dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, encoder_dim)
        init_linear(self.embed)
        init_linear(self.proj)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, context: Tensor, context_index: Tensor, target_index: Tensor) -> Tensor:
        """Predict target tokens.

        Args:
            context: ``(B, P + K_c, d)`` context-encoder output (prefix first).
            context_index: ``(B, K_c)`` positions of the context tokens.
            target_index: ``(B, M, K_t)`` positions of ``M`` target sets.

        Returns:
            ``(B, M, K_t, d)`` predicted target-encoder tokens.
        """
        b, m, k = target_index.shape
        z = self.embed(context)
        position = torch.cat([z.new_zeros(b, self.num_prefix_tokens, z.shape[-1]), self.feature_index[context_index]], 1)
        z = (z + position).unsqueeze(1).expand(-1, m, -1, -1).reshape(b * m, -1, z.shape[-1])
        queries = (self.mask_token + self.feature_index[target_index]).reshape(b * m, k, -1)
        out = self.blocks(torch.cat([z, queries], dim=1))[:, -k:]
        return self.proj(self.norm(out)).reshape(b, m, k, -1)
