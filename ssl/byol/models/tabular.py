"""T-JEPA's networks for tables (Thimonier et al. 2024): feature tokenizer, transformer encoder, predictor.

Token layout. A row has ``F = F_num + F_cat`` features (numeric columns first).
The encoder turns it into ``R + F`` tokens of width ``d``: ``R`` [REG] tokens
(the paper's regularisation tokens) at positions ``0 .. R-1``, then the
features. **Feature indices** (what masks hold) always run over ``[0, F)`` and
address features, never tokens: the encoder selects the kept features *before*
it prepends the [REG] tokens, and :meth:`TabularTransformer.tokens` returns
the [REG] outputs apart from the features' (:class:`~byol.models.tokens.Tokens`).
(The reference implementation gathers masked indices from the sequence that already starts with a [CLS]/[REG]
token, which shifts every feature by one; nothing here does that.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .state import strict_load
from .tokens import Tokens, gather_tokens, replace_masked


def sincos_encoding(positions: int, dim: int) -> Tensor:
    """Fixed 1-D sine-cosine encodings ``(positions, dim)`` (Vaswani et al. 2017; I-JEPA's layout: sines, cosines)."""
    if dim % 2:
        raise ValueError(f"sine-cosine encodings need an even width, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


class FeatureTokenizer(nn.Module):
    """One ``d``-dimensional token per feature (FT-Transformer's tokenizer, Gorishniy et al. 2021).

    - numeric feature ``j``: ``x_j * W_j + b_j``; a missing value (``NaN``) gets
      a learned per-feature [MISSING] embedding ``m_j`` instead (the learned
      missing indicator of :mod:`byol.data.tabular_preprocessing`);
    - categorical feature ``j``: ``E_j[c] + b_{F_num + j}``. Row 0 of every
      ``E_j`` is [UNKNOWN] (a category unseen in training) and starts at zero,
      so an unknown category is represented by the feature's bias alone.

    Weights, biases and embeddings are initialised uniformly in
    ``[-1/sqrt(d), 1/sqrt(d)]`` as in rtdl.

    Args:
        num_numeric: ``F_num``.
        cardinalities: embedding rows of each categorical feature (``F_cat`` entries).
        dim: token width ``d``.
    """

    def __init__(self, num_numeric: int, cardinalities: Sequence[int], dim: int) -> None:
        super().__init__()
        self.num_numeric, self.cardinalities, self.dim = num_numeric, list(cardinalities), dim
        num_features = num_numeric + len(self.cardinalities)
        if num_features == 0:
            raise ValueError("a table needs at least one feature")
        bound = 1 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_numeric, dim).uniform_(-bound, bound))
        self.missing = nn.Parameter(torch.empty(num_numeric, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_features, dim).uniform_(-bound, bound))
        self.embedding = nn.Embedding(sum(self.cardinalities), dim)
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        offsets = torch.tensor([0, *self.cardinalities], dtype=torch.long).cumsum(0)[:-1]
        self.register_buffer("offsets", offsets, persistent=False)
        with torch.no_grad():
            self.embedding.weight[offsets] = 0.0  # the [UNKNOWN] rows

    @property
    def num_features(self) -> int:
        return self.num_numeric + len(self.cardinalities)

    def forward(self, num: Tensor, cat: Tensor) -> Tensor:
        """``num (B, F_num)`` float (``NaN`` = missing), ``cat (B, F_cat)`` int64 -> tokens ``(B, F, d)``."""
        if num.shape[1] != self.num_numeric or cat.shape[1] != len(self.cardinalities):
            raise ValueError(
                f"expected {self.num_numeric} numeric and {len(self.cardinalities)} categorical features, "
                f"got {num.shape[1]} and {cat.shape[1]}"
            )
        absent = num.isnan().unsqueeze(-1)
        # NaN * W would poison the gradient of W through the discarded branch of where(): fill first
        numeric = torch.where(absent, self.missing, num.nan_to_num(0.0).unsqueeze(-1) * self.weight)
        if self.cardinalities:
            categorical = self.embedding(cat + self.offsets)
        else:
            categorical = numeric.new_zeros(len(num), 0, self.dim)
        return torch.cat([numeric, categorical], dim=1) + self.bias


def _transformer(dim: int, depth: int, heads: int, ffn_dim: int, dropout: float) -> nn.TransformerEncoder:
    """Pre-norm transformer blocks (GELU feed-forward), no final norm; linear layers as :func:`_init_linear`."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    layer = nn.TransformerEncoderLayer(
        dim, heads, ffn_dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    blocks.apply(_init_linear)
    return blocks


class TabularTransformer(nn.Module):
    """T-JEPA's encoder (context and target): feature tokens + [REG] tokens -> transformer -> ``R + F`` tokens.

    Each feature token gets a fixed sine-cosine encoding of its feature index
    (added before any selection, so a kept feature carries its own index). The
    ``R`` [REG] tokens are learned vectors prepended to the sequence; they see
    every kept feature and carry no feature index.

    NOTE: pre-norm blocks with a final LayerNorm, where the reference stacks
    post-norm blocks and a LayerNorm-Linear-LayerNorm head: pre-norm trains
    deep stacks without warm-up tricks, and the final LayerNorm still gives the
    predictor normalised targets (as I-JEPA's layer-normed targets).

    Args:
        num_numeric, cardinalities: the table (see :class:`FeatureTokenizer`).
        dim: token width ``d``.
        depth: transformer blocks.
        heads: attention heads (``dim`` must be divisible by it).
        ffn_dim: hidden width of the feed-forward layers.
        dropout: dropout inside the blocks.
        num_reg_tokens: ``R``, the number of [REG] tokens.

    Attributes:
        num_features: ``(R + F) * d``, the width of :meth:`forward`'s flattened representation.
    """

    def __init__(
        self,
        num_numeric: int,
        cardinalities: Sequence[int],
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        ffn_dim: int = 128,
        dropout: float = 0.0,
        num_reg_tokens: int = 1,
    ) -> None:
        super().__init__()
        if num_reg_tokens < 0:
            raise ValueError(f"num_reg_tokens must be >= 0, got {num_reg_tokens}")
        self.dim, self.depth, self.heads, self.ffn_dim = dim, depth, heads, ffn_dim
        self.dropout, self.num_reg_tokens = dropout, num_reg_tokens
        self.tokenizer = FeatureTokenizer(num_numeric, cardinalities, dim)
        self.register_buffer("feature_index", sincos_encoding(self.tokenizer.num_features, dim), persistent=False)
        self.reg_tokens = nn.Parameter(torch.randn(num_reg_tokens, dim) * 0.02)
        self.blocks = _transformer(dim, depth, heads, ffn_dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.num_tokens = num_reg_tokens + self.tokenizer.num_features
        self.num_features: int = self.num_tokens * dim

    @property
    def num_table_features(self) -> int:
        """``F``, the number of feature tokens."""
        return self.tokenizer.num_features

    def tokens(
        self, x: dict[str, Tensor], keep: Tensor | None = None, mask: Tensor | None = None,
        mask_token: Tensor | None = None,
    ) -> Tokens:
        """Encode the kept features of each row (the token interface, :mod:`byol.models.tokens`).

        Args:
            x: ``{"num": (B, F_num), "cat": (B, F_cat)}``.
            keep: ``(B, K)`` feature indices in ``[0, F)`` per row; ``None`` keeps all ``F`` in order.
            mask, mask_token: ``(B, F)`` features whose token is replaced by ``mask_token`` ``(d,)`` before the
                feature-index encoding is added (and before ``keep``).

        Returns:
            :class:`Tokens`: ``prefix`` the ``R`` [REG] outputs ``(B, R, d)``, ``patches`` the kept features
            ``(B, K, d)`` in the order of ``keep``.
        """
        features = replace_masked(self.tokenizer(x["num"], x["cat"]), mask, mask_token) + self.feature_index
        if keep is not None:
            features = gather_tokens(features, keep)
        reg = self.reg_tokens.expand(len(features), -1, -1)
        out = self.norm(self.blocks(torch.cat([reg, features], dim=1)))
        return Tokens(out[:, : self.num_reg_tokens], out[:, self.num_reg_tokens :])

    def pool(self, tokens: Tokens) -> Tensor:
        """The representation of :meth:`forward` from tokens: every output flattened, ``(B, (R + K) * d)``."""
        return tokens.sequence.flatten(1)

    def forward(self, x: dict[str, Tensor]) -> Tensor:
        """The full row's representation, flattened: ``(B, (R + F) * d)``."""
        return self.pool(self.tokens(x))

    def export_state_dict(self) -> dict[str, Tensor]:
        return self.state_dict()

    def load_export_state_dict(self, state: dict[str, Tensor]) -> None:
        """Strictly load weights written by :meth:`export_state_dict`."""
        strict_load(self, state, "the exported weights")

    def export_config(self) -> dict[str, Any]:
        """Arguments that rebuild this architecture (used by backbone export)."""
        return {
            "class": "TabularTransformer",
            "num_numeric": self.tokenizer.num_numeric,
            "cardinalities": list(self.tokenizer.cardinalities),
            "dim": self.dim,
            "depth": self.depth,
            "heads": self.heads,
            "ffn_dim": self.ffn_dim,
            "dropout": self.dropout,
            "num_reg_tokens": self.num_reg_tokens,
            "num_features": self.num_features,
        }


class TJEPAPredictor(nn.Module):
    """T-JEPA's predictor: from the context tokens, predict the target encoder's tokens of the target features.

    A narrow transformer (I-JEPA's predictor, as in the T-JEPA reference):
    context tokens are projected from ``d`` to ``dim`` and get the sine-cosine
    encoding of their feature index ([REG] outputs get none); for each target
    set, one learned [MASK] token plus the encoding of each target feature's
    index is appended; the outputs at the [MASK] positions are projected back
    to ``d``. Target sets are processed as separate sequences (the context is
    repeated), so they do not see each other.

    Args:
        num_features: ``F``.
        encoder_dim: ``d``, the encoder's token width.
        num_reg_tokens: ``R``, the [REG] outputs at the start of the context.
        dim: the predictor's width (paper: narrower than ``d``).
        depth, heads, ffn_dim, dropout: its transformer blocks.
    """

    def __init__(
        self,
        num_features: int,
        encoder_dim: int,
        num_reg_tokens: int,
        dim: int = 32,
        depth: int = 2,
        heads: int = 2,
        ffn_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_reg_tokens = num_reg_tokens
        self.embed = nn.Linear(encoder_dim, dim)
        self.register_buffer("feature_index", sincos_encoding(num_features, dim), persistent=False)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.blocks = _transformer(dim, depth, heads, ffn_dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, encoder_dim)
        _init_linear(self.embed)
        _init_linear(self.proj)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, context: Tensor, context_index: Tensor, target_index: Tensor) -> Tensor:
        """Predict target tokens.

        Args:
            context: ``(B, R + K_c, d)`` context-encoder output.
            context_index: ``(B, K_c)`` feature indices of the context tokens.
            target_index: ``(B, M, K_t)`` feature indices of ``M`` target sets.

        Returns:
            ``(B, M, K_t, d)`` predicted target-encoder tokens.
        """
        b, m, k = target_index.shape
        z = self.embed(context)
        position = torch.cat([z.new_zeros(b, self.num_reg_tokens, z.shape[-1]), self.feature_index[context_index]], 1)
        z = (z + position).unsqueeze(1).expand(-1, m, -1, -1).reshape(b * m, -1, z.shape[-1])
        queries = (self.mask_token + self.feature_index[target_index]).reshape(b * m, k, -1)
        out = self.blocks(torch.cat([z, queries], dim=1))[:, -k:]
        return self.proj(self.norm(out)).reshape(b, m, k, -1)


def _init_linear(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights and zero biases, as the reference's ``trunc_normal`` init."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
