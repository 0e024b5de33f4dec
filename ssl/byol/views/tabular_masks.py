"""T-JEPA's masks: per row, a context subset of the features and target subsets disjoint from it.

Sampled on the batch's device from the global RNG (which the core seeds per
batch, so a resumed run draws the same masks). Indices are **feature**
indices in ``[0, F)``, never token positions: the encoder prepends its [REG]
tokens after selecting features (see :mod:`byol.models.tabular`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class FeatureMasks:
    """The features each row shows the context encoder and those it must predict.

    Attributes:
        context: ``(B, K_c)`` feature indices, distinct within a row.
        targets: ``(B, M, K_t)`` feature indices of ``M`` target sets, each distinct
            within itself and disjoint from the row's context (target sets may
            overlap each other).
    """

    context: Tensor
    targets: Tensor


class TabularMasks(nn.Module):
    """Draw :class:`FeatureMasks` for a batch (Thimonier et al. 2024, Sec. 3; the reference's ``MaskCollator``).

    Per batch, the context size ``K_c`` and the target size ``K_t`` are drawn
    uniformly among the integers between the rounded shares of the feature
    count ``F`` (at least 1), redrawn until ``K_c + K_t <= F``. Per row, a
    random permutation of the features gives the context (its first ``K_c``
    entries); each of the ``num_targets`` target sets is a random ``K_t``-subset
    of the remaining features.

    Args:
        context_share: ``(min, max)`` share of the features in the context.
        target_share: ``(min, max)`` share of the features in each target set.
        num_targets: ``M``, target sets per row (paper: 4).
    """

    def __init__(
        self,
        context_share: tuple[float, float] = (0.15, 0.4),
        target_share: tuple[float, float] = (0.15, 0.6),
        num_targets: int = 4,
    ) -> None:
        super().__init__()
        for name, (lo, hi) in (("context_share", context_share), ("target_share", target_share)):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must satisfy 0 < min <= max <= 1, got {(lo, hi)}")
        if num_targets < 1:
            raise ValueError(f"num_targets must be >= 1, got {num_targets}")
        self.context_share, self.target_share, self.num_targets = tuple(context_share), tuple(target_share), num_targets

    def size_range(self, share: tuple[float, float], num_features: int) -> tuple[int, int]:
        """``(min, max)`` subset sizes for ``share`` of ``num_features`` (rounded, at least 1)."""
        lo = max(1, round(share[0] * num_features))
        return lo, max(lo, round(share[1] * num_features))

    def sample_sizes(self, num_features: int) -> tuple[int, int]:
        """``(K_c, K_t)`` for one batch (CPU global RNG)."""
        c_lo, c_hi = self.size_range(self.context_share, num_features)
        t_lo, t_hi = self.size_range(self.target_share, num_features)
        if c_lo + t_lo > num_features:
            raise ValueError(
                f"{num_features} features cannot hold a context of at least {c_lo} and a disjoint target of at least "
                f"{t_lo}; lower masks.context_share / masks.target_share"
            )
        while True:
            k_c = int(torch.randint(c_lo, c_hi + 1, ()))
            k_t = int(torch.randint(t_lo, t_hi + 1, ()))
            if k_c + k_t <= num_features:
                return k_c, k_t

    def forward(
        self, batch_size: int, num_features: int | tuple[int, int], device: torch.device | str = "cpu"
    ) -> FeatureMasks:
        """Masks for ``batch_size`` rows of ``num_features`` features (or a ``(1, F)`` grid of them), on ``device``."""
        if isinstance(num_features, (tuple, list)):
            num_features = num_features[0] * num_features[1]
        k_c, k_t = self.sample_sizes(num_features)
        order = torch.rand(batch_size, num_features, device=device).argsort(dim=1)
        context, rest = order[:, :k_c], order[:, k_c:]
        picks = torch.rand(batch_size, self.num_targets, num_features - k_c, device=device).argsort(dim=2)[..., :k_t]
        targets = rest.gather(1, picks.flatten(1)).view(batch_size, self.num_targets, k_t)
        return FeatureMasks(context, targets)
