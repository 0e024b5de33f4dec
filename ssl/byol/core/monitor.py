"""Label-free collapse signals and the online linear probe used while pretraining."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Mean per-dimension std of l2-normalised embeddings ``z`` of shape ``(B, D)``.

    Healthy training sits near ``1 / sqrt(D)``; a collapsed representation
    (every sample mapped to one point) gives 0.
    """
    return F.normalize(z.float(), dim=1).std(dim=0).mean()


@torch.no_grad()
def rankme(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Effective rank of embeddings ``z`` of shape ``(B, D)`` (RankMe, Garrido et al. 2023).

    ``exp(H(p))`` with ``p_k = s_k / sum(s) + eps`` over the singular values ``s``:
    between 1 (collapse to a line) and ``min(B, D)``.
    """
    s = torch.linalg.svdvals(z.float())
    p = s / s.sum() + eps
    return torch.exp(-(p * torch.log(p)).sum())


class OnlineLinearProbe(nn.Module):
    """Linear classifier trained on **detached** features while pretraining.

    It reads features through ``detach()``, so its loss cannot reach the
    backbone. Labels ``< 0`` mark unlabeled samples and are ignored.

    Args:
        in_dim: feature dimension ``D``.
        num_classes: number of classes ``C``.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, logits)`` for features ``(B, D)`` and labels ``(B,)``.

        The loss is the mean over labeled samples, 0 (with a graph, so DDP sees the probe used) when the batch
        holds none; computed without a host-device sync.
        """
        logits = self.linear(features.detach().float())
        labeled = labels >= 0
        losses = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")
        return (losses * labeled).sum() / labeled.sum().clamp(min=1), logits
