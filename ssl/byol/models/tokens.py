"""The token interface of transformer encoders: what masked-prediction and self-distillation methods read.

An encoder with tokens has ``tokens(x, keep=None, mask=None, mask_token=None) -> Tokens`` and ``pool(tokens) ->
(B, D)``, with ``pool(tokens(x))`` equal to ``forward(x)``. Positions are the encoder's input positions (image
patches in row-major order, log-mel patches, table features), never sequence indices: prefix tokens (a ViT's CLS and
register tokens, the tabular [REG] tokens) carry no position and come back separately.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Tokens(NamedTuple):
    """An encoder's output tokens for a batch.

    Attributes:
        prefix: ``(B, P, d)`` outputs of the prefix tokens (CLS, registers, [REG]); ``P`` may be 0.
        patches: ``(B, K, d)`` outputs at the kept positions, in the order of ``keep`` (all ``N`` positions in
            order when nothing was dropped).
    """

    prefix: Tensor
    patches: Tensor

    @property
    def sequence(self) -> Tensor:
        """``(B, P + K, d)``: the prefix, then the positions, as the encoder's blocks saw them."""
        return torch.cat([self.prefix, self.patches], dim=1)


def gather_tokens(tokens: Tensor, index: Tensor) -> Tensor:
    """Select tokens per row: ``tokens (B, N, d)``, ``index (B, *S)`` in ``[0, N)`` -> ``(B, *S, d)``."""
    flat = index.reshape(index.shape[0], -1)
    picked = tokens.gather(1, flat.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    return picked.reshape(*index.shape, tokens.shape[-1])


def replace_masked(embeddings: Tensor, mask: Tensor | None, mask_token: Tensor | None) -> Tensor:
    """Put ``mask_token`` ``(d,)`` in place of the embeddings ``(B, N, d)`` where ``mask`` ``(B, N)`` is True
    (iBOT's masked image modelling: the encoder sees a learned token there, with the position's encoding added
    after). No boolean indexing, so nothing is read back from the device."""
    if mask is None:
        return embeddings
    if mask_token is None:
        raise ValueError("a mask needs a mask_token to put in place of the masked positions")
    if mask.shape != embeddings.shape[:2]:
        raise ValueError(f"mask must be (B, N) = {tuple(embeddings.shape[:2])}, got {tuple(mask.shape)}")
    return torch.where(mask.unsqueeze(-1), mask_token.to(embeddings.dtype), embeddings)
