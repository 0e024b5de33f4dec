"""Two views of table rows for the two-view methods (BYOL, SimSiam, MoCo v3, Barlow Twins, VICReg), on the device."""

from __future__ import annotations

import torch
from torch import Tensor, nn

Rows = dict[str, Tensor]
"""Preprocessed rows: ``{"num": (B, F_num) float (NaN = missing), "cat": (B, F_cat) int64 (0 = [UNKNOWN])}``."""


class TabularCorruptionViews(nn.Module):
    """SCARF's feature corruption (Bahri et al. 2022), drawn independently for each of two views.

    In each view every feature of every row is, with probability ``corruption``,
    replaced by the same feature of another row of the batch chosen uniformly
    (a draw from the feature's empirical marginal over the batch); then each
    categorical value is, with probability ``mask_prob``, set to its feature's
    [UNKNOWN] index 0. Rows arrive preprocessed (quantile-transformed numbers,
    category indices), so ``preprocess`` is the identity.

    NOTE: SCARF draws replacements from the marginal of the whole training set
    and corrupts one view only; here both views are corrupted, from the batch,
    so that the views stay on the device and symmetric like the image views.

    Args:
        corruption: share of features replaced in each view (SCARF: 0.6).
        mask_prob: share of categorical values masked to [UNKNOWN] in each view.
    """

    def __init__(self, corruption: float = 0.6, mask_prob: float = 0.0) -> None:
        super().__init__()
        if not (0.0 <= corruption <= 1.0 and 0.0 <= mask_prob <= 1.0):
            raise ValueError(f"corruption and mask_prob are probabilities, got {corruption} and {mask_prob}")
        self.corruption, self.mask_prob = corruption, mask_prob

    def forward(self, rows: Rows) -> tuple[Rows, Rows]:
        return self.view(rows), self.view(rows)

    def view(self, rows: Rows) -> Rows:
        """One corrupted copy of the rows (same keys and shapes)."""
        num, cat = _corrupt(rows["num"], self.corruption), _corrupt(rows["cat"], self.corruption)
        if self.mask_prob > 0:
            cat = cat.masked_fill(torch.rand(cat.shape, device=cat.device) < self.mask_prob, 0)
        return {"num": num, "cat": cat}

    def preprocess(self, rows: Rows) -> Rows:
        """The evaluation transform: rows arrive preprocessed."""
        return rows


def _corrupt(x: Tensor, p: float) -> Tensor:
    """``(B, F)``: each entry replaced with probability ``p`` by the same column of a uniformly drawn row."""
    if x.numel() == 0 or p == 0:
        return x
    donors = torch.randint(0, x.shape[0], x.shape, device=x.device)
    replace = torch.rand(x.shape, device=x.device) < p
    return torch.where(replace, x.gather(0, donors), x)
