"""T-JEPA's networks for tables (Thimonier et al. 2024): feature tokenizer and transformer encoder (the predictor is
the generic :class:`~byol.models.predictor.JEPAPredictor`).

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

from .predictor import JEPAPredictor
from .state import strict_load
from .tokens import Tokens, gather_tokens, replace_masked
from .transformer import sincos_encoding, transformer_blocks

TJEPAPredictor = JEPAPredictor
"""T-JEPA's predictor: :class:`~byol.models.predictor.JEPAPredictor` over the ``(1, F)`` grid of a table's features
(the name recipes and checkpoints use)."""


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
        self.blocks = transformer_blocks(dim, depth, heads, ffn_dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.num_tokens = num_reg_tokens + self.tokenizer.num_features
        self.num_features: int = self.num_tokens * dim

    @property
    def num_table_features(self) -> int:
        """``F``, the number of feature tokens."""
        return self.tokenizer.num_features

    @property
    def grid(self) -> tuple[int, int]:
        """The features as a ``(1, F)`` grid of positions (what mask samplers and predictors address)."""
        return 1, self.tokenizer.num_features

    @property
    def num_prefix_tokens(self) -> int:
        """``R``, the [REG] tokens before the features."""
        return self.num_reg_tokens

    @property
    def token_dim(self) -> int:
        """``d``, the width of the tokens."""
        return self.dim

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

    def layer_tokens(self, x: dict[str, Tensor], layers: int) -> list[Tokens]:
        """The outputs of the last ``layers`` transformer blocks on the whole row (data2vec's layer-averaged targets).

        Every feature is kept and the [REG] tokens are prepended as in :meth:`tokens`; the blocks of
        ``self.blocks`` (an ``nn.TransformerEncoder`` without a norm of its own) run one by one, which is what
        ``self.blocks(...)`` does. Outputs are taken **before** the final norm: ``self.norm`` of the last entry's
        ``sequence`` is ``tokens(x).sequence``.

        Args:
            x: ``{"num": (B, F_num), "cat": (B, F_cat)}``.
            layers: how many of the top blocks to return, ``1 .. depth``.

        Returns:
            ``layers`` :class:`Tokens` in block order (the last block last), each with ``prefix`` the ``R`` [REG]
            outputs ``(B, R, d)`` and ``patches`` the ``F`` features ``(B, F, d)`` in order.
        """
        blocks = self.blocks.layers
        if not 1 <= layers <= len(blocks):
            raise ValueError(f"layers must be in 1 .. depth = {len(blocks)}, got {layers}")
        features = self.tokenizer(x["num"], x["cat"]) + self.feature_index
        h = torch.cat([self.reg_tokens.expand(len(features), -1, -1), features], dim=1)
        outputs = []
        for i, block in enumerate(blocks):
            h = block(h)
            if i >= len(blocks) - layers:
                outputs.append(Tokens(h[:, : self.num_reg_tokens], h[:, self.num_reg_tokens :]))
        return outputs

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
