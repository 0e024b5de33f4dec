"""InfoNCE over the global batch, as MoCo v3 uses it (Chen, Xie & He 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.distributed import gather, rank


def infonce(queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Contrastive loss of each query against the keys of the **global** batch, scaled by ``2 * temperature``.

    Query ``i`` of this rank must pick out its own sample's key among the keys
    of every rank (``W * B`` candidates: the other samples are the negatives):
    ``2T * CE(q_i . k_j / T, j = i + rank * B)`` with ``q``, ``k`` l2-normalised,
    averaged over this rank's queries. MoCo v3 scales by ``2T`` so that the
    gradient's size does not depend on the temperature. Keys are detached
    (they come from the momentum encoder).

    Args:
        queries: ``(B, D)`` online predictions of one view.
        keys: ``(B, D)`` momentum-encoder projections of the other view.
        temperature: softmax temperature ``T`` (MoCo v3: 0.2).

    Returns:
        Scalar; its mean over ranks is the loss of one process on the global batch.
    """
    if queries.shape != keys.shape or queries.ndim != 2:
        raise ValueError(f"queries and keys must both be (B, D), got {tuple(queries.shape)} and {tuple(keys.shape)}")
    q = F.normalize(queries.float(), dim=1)
    k = F.normalize(gather(keys.detach().float()), dim=1)
    logits = q @ k.T / temperature  # (B, W * B)
    labels = torch.arange(len(q), device=q.device) + rank() * len(q)
    return F.cross_entropy(logits, labels) * (2 * temperature)


def symmetric_infonce(
    q1: torch.Tensor, q2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """MoCo v3's symmetrised loss ``infonce(q1, k2) + infonce(q2, k1)``: each view's query finds the other's key.

    Args:
        q1, q2: ``(B, D)`` online predictions of views 1 and 2.
        k1, k2: ``(B, D)`` momentum-encoder projections of views 1 and 2.
    """
    return infonce(q1, k2, temperature) + infonce(q2, k1, temperature)
