"""Weighted k-nearest-neighbour classification of frozen features.

The protocol of Wu et al. (2018), "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", as used by DINO and solo-learn:
features are l2-normalised, similarity is cosine, and each of the ``k``
nearest bank entries votes for its class with weight ``exp(sim / T)``
(defaults ``k=200``, ``T=0.1`` from that paper).

Under ``torch.distributed`` (world size > 1) the bank may be sharded: each rank
passes its own shard and the same queries; local top-k candidates are
all-gathered and merged, so every rank returns the scores of the full bank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .linear import accuracy


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _validate(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
              k: int, temperature: float, chunk_size: int) -> None:
    if bank.dim() != 2:
        raise ValueError(f"bank must be (N, D), got shape {tuple(bank.shape)}")
    if queries.dim() != 2:
        raise ValueError(f"queries must be (M, D), got shape {tuple(queries.shape)}")
    if bank.shape[1] != queries.shape[1]:
        raise ValueError(f"feature dimension mismatch: bank has D={bank.shape[1]}, queries have D={queries.shape[1]}")
    if bank_labels.dim() != 1 or bank_labels.shape[0] != bank.shape[0]:
        raise ValueError(f"bank_labels must be (N,) with N={bank.shape[0]} (bank rows), "
                         f"got shape {tuple(bank_labels.shape)}")
    if num_classes < 1 or k < 1 or chunk_size < 1 or temperature <= 0:
        raise ValueError(f"need num_classes >= 1, k >= 1, chunk_size >= 1, temperature > 0; got "
                         f"num_classes={num_classes}, k={k}, chunk_size={chunk_size}, temperature={temperature}")


def _topk(sims: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of ``(B, N)`` sims with their labels, padded to ``(B, k)`` with ``-inf`` / label 0.

    ``labels`` is ``(N,)`` (one per bank entry) or ``(B, N)`` (one per candidate).
    """
    top_sims, idx = sims.topk(min(k, sims.shape[1]), dim=1)
    top_labels = labels[idx] if labels.dim() == 1 else labels.gather(1, idx)
    pad = k - top_sims.shape[1]
    if pad > 0:
        top_sims = F.pad(top_sims, (0, pad), value=float("-inf"))
        top_labels = F.pad(top_labels, (0, pad), value=0)
    return top_sims, top_labels


def knn_classify(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Weighted kNN class scores (Wu et al. 2018; k=200, T=0.1, cosine similarity).

    Args:
        bank: ``(N, D)`` features of the labelled bank (this rank's shard under DDP).
        bank_labels: ``(N,)`` int64 labels in ``[0, num_classes)``.
        queries: ``(M, D)`` features to classify (the same on every rank under DDP).
        num_classes: number of classes ``C``.
        k: neighbours per query; clamped to the (global) bank size.
        temperature: ``T`` in the vote weight ``exp(cos_sim / T)``.
        chunk_size: queries per chunk; memory is ``O(chunk_size * N)``, never ``O(M * N)``.

    Returns:
        ``(M, C)`` float scores: sum of ``exp(sim / T)`` over the top-``k`` neighbours of each
        class; ``argmax(-1)`` is the prediction. Identical on every rank.
    """
    _validate(bank, bank_labels, queries, num_classes, k, temperature, chunk_size)
    # float64: a sharded bank multiplies smaller matrices, and float32 rounding then differs enough from the
    # single-process product to swap near-tied neighbours at the k-th place
    dtype = torch.float64
    bank = F.normalize(bank.to(dtype), dim=1)
    queries = F.normalize(queries.to(device=bank.device, dtype=dtype), dim=1)
    bank_labels = bank_labels.to(device=bank.device, dtype=torch.long)
    world = _world_size()

    out = []
    for q in queries.split(chunk_size):
        sims, labels = _topk(q @ bank.T, bank_labels, k)  # (B, k)
        if world > 1:
            all_sims = [torch.empty_like(sims) for _ in range(world)]
            all_labels = [torch.empty_like(labels) for _ in range(world)]
            dist.all_gather(all_sims, sims.contiguous())
            dist.all_gather(all_labels, labels.contiguous())
            sims, labels = _topk(torch.cat(all_sims, 1), torch.cat(all_labels, 1), k)  # global top-k
        # padded entries have sim -inf and so weight exp(-inf) = 0: they never vote
        weights = (sims / temperature).exp()
        out.append(torch.zeros(q.shape[0], num_classes, dtype=dtype, device=bank.device)
                   .scatter_add_(1, labels, weights))
    if not out:
        return torch.zeros(0, num_classes, dtype=dtype, device=bank.device)
    return torch.cat(out)


def knn_accuracy(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> dict[str, float | None]:
    """Top-1 / top-5 accuracy (percent) of :func:`knn_classify` on ``(M,)`` int64 ``query_labels``.

    Returns ``{"top1": float, "top5": float | None}``; ``top5`` is ``None`` when ``num_classes < 5``.
    """
    if queries.dim() != 2 or query_labels.shape != (queries.shape[0],):
        raise ValueError(f"query_labels must be (M,) with M = queries rows ({tuple(queries.shape)}), "
                         f"got shape {tuple(query_labels.shape)}")
    scores = knn_classify(bank, bank_labels, queries, num_classes, k, temperature, chunk_size)
    query_labels = query_labels.to(scores.device, torch.long)
    top5 = accuracy(scores, query_labels, num_classes, top_k=5) if num_classes >= 5 else None
    return {"top1": accuracy(scores, query_labels, num_classes), "top5": top5}
