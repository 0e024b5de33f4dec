"""Masked image modelling masks for iBOT's patch loss (Zhou et al. 2022; DINOv2, Oquab et al. 2023).

Which samples are masked and how many patches each loses are decided on the host (torch's CPU generator, seeded
per batch with everything else the views draw); which patches is drawn on the device. The counts are known on the
host, so the masked patches can be gathered into a dense ``(M, ...)`` batch without reading anything back from
the device (a boolean-mask selection would).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class MaskedPatches(NamedTuple):
    """The masked patches of ``B`` images of ``N`` patches; ``M`` patches are masked in all.

    Attributes:
        mask: ``(B, N)`` bool, True where the student sees the mask token.
        index: ``(M,)`` flat positions ``b * N + n`` of the masked patches, grouped by image.
        weight: ``(M,)`` float, ``1 / (masked patches of its image)``: every masked image weighs the same.
    """

    mask: Tensor
    index: Tensor
    weight: Tensor


class RandomPatchMasks(nn.Module):
    """Masks for a ``probability`` share of the images, the others unmasked (DINOv2's ``mask_probability``).

    The ``n = int(B * probability)`` masked images are a random subset; their masking ratios are spread over
    ``ratio`` as DINOv2's collate does (image ``i`` of ``n`` draws its ratio uniformly from the ``i``-th of ``n``
    equal sub-intervals), and image ``i`` loses ``int(N * ratio_i)`` patches, at least one.

    NOTE: the masked patches are a uniformly random subset of the grid, where iBOT and DINOv2 mask rectangular
    blocks; the count per image, which is what the loss weights depend on, follows theirs.

    Args:
        ratio: ``(min, max)`` share of an image's patches that are masked (paper: 0.1 - 0.5).
        probability: share of the images that are masked (DINOv2: 0.5).
    """

    def __init__(self, ratio: tuple[float, float] = (0.1, 0.5), probability: float = 0.5) -> None:
        super().__init__()
        if not 0 < ratio[0] <= ratio[1] < 1:
            raise ValueError(f"ratio must satisfy 0 < min <= max < 1, got {tuple(ratio)}")
        if not 0 <= probability <= 1:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.ratio, self.probability = tuple(ratio), probability

    def counts(self, batch: int, num_patches: int) -> Tensor:
        """Masked patches per image, ``(batch,)`` int64 on the host (0 for the unmasked images)."""
        n = int(batch * self.probability)
        low, high = self.ratio
        edges = torch.linspace(low, high, n + 1)
        ratios = edges[:-1] + (edges[1:] - edges[:-1]) * torch.rand(n)
        counts = torch.zeros(batch, dtype=torch.long)
        counts[torch.randperm(batch)[:n]] = (ratios * num_patches).long().clamp(min=1, max=num_patches - 1)
        return counts

    def forward(self, batch: int, num_patches: int, device: torch.device | str = "cpu") -> MaskedPatches:
        """Masks for ``batch`` images of ``num_patches`` patches, on ``device``."""
        counts = self.counts(batch, num_patches)
        total = sum(counts.tolist())  # a CPU tensor: nothing is read from a device
        rows = torch.repeat_interleave(torch.arange(batch), counts, output_size=total)
        firsts = torch.repeat_interleave(counts.cumsum(0) - counts, counts, output_size=total)
        ranks = torch.arange(total) - firsts  # 0 .. counts[b] - 1 for the rows of image b
        weight = torch.repeat_interleave(1 / counts.clamp(min=1).float(), counts, output_size=total)
        rows, ranks = rows.to(device, non_blocking=True), ranks.to(device, non_blocking=True)
        order = torch.rand(batch, num_patches, device=device).argsort(dim=1)  # a random patch order per image
        index = rows * num_patches + order[rows, ranks]  # the first counts[b] patches of image b's order
        mask = torch.zeros(batch * num_patches, dtype=torch.bool, device=device)
        mask = mask.index_fill(0, index, True).view(batch, num_patches)
        return MaskedPatches(mask, index, weight.to(device, non_blocking=True))
