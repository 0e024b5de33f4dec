"""Weighted kNN classifier against a brute-force reference, by hand, and sharded over 2 gloo processes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from byol.eval.knn import knn_accuracy, knn_classify


def reference_knn(bank: np.ndarray, labels: np.ndarray, queries: np.ndarray, num_classes: int,
                  k: int, temperature: float) -> np.ndarray:
    """Plain-loop weighted kNN: cosine to every bank vector, sort, take k, add exp(s/T) per class."""
    scores = np.zeros((len(queries), num_classes))
    for i, q in enumerate(queries):
        sims = [float(q @ b / (np.linalg.norm(q) * np.linalg.norm(b))) for b in bank]
        order = sorted(range(len(bank)), key=lambda j: -sims[j])[:k]
        for j in order:
            scores[i, labels[j]] += math.exp(sims[j] / temperature)
    return scores


def random_problem(seed: int, n: int = 50, d: int = 8, m: int = 20, c: int = 4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, c, (n,), generator=g),
            torch.randn(m, d, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("k, chunk_size", [(7, 1024), (7, 3), (80, 1024), (80, 3), (1, 5)])
def test_matches_brute_force_reference(k: int, chunk_size: int) -> None:
    bank, labels, queries = random_problem(0)
    expected = reference_knn(bank.numpy(), labels.numpy(), queries.numpy(), 4, k, 0.1)
    scores = knn_classify(bank, labels, queries, num_classes=4, k=k, temperature=0.1, chunk_size=chunk_size)
    assert scores.shape == (20, 4)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-10)


def test_float32_input_and_temperature() -> None:
    bank, labels, queries = random_problem(1)
    expected = reference_knn(bank.numpy(), labels.numpy(), queries.numpy(), 4, 10, 0.5)
    scores = knn_classify(bank.float(), labels, queries.float(), 4, k=10, temperature=0.5, chunk_size=4)
    assert scores.dtype == torch.float64  # scores are computed in float64 whatever the input
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-4)


def test_hand_worked_2d() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])
    queries = torch.tensor([[2.0, 0.0], [-1.0, 0.1]])

    assert knn_classify(bank, labels, queries, 2, k=1).argmax(1).tolist() == [0, 1]

    # query 0 = (1, 0): cosines 1, 0, -1, 1/sqrt2 -> top-3 are bank 0 (c0), 3 (c0), 1 (c1)
    # query 1 = (-1, .1): cosines -1/r, .1/r, 1/r, -.9/(r sqrt2) with r = sqrt(1.01) -> top-3 are 2 (c1), 1 (c1), 3 (c0)
    r = math.sqrt(1.01)
    expected = torch.tensor([
        [math.exp(10.0) + math.exp(10.0 / math.sqrt(2)), math.exp(0.0)],
        [math.exp(-9.0 / (r * math.sqrt(2))), math.exp(10.0 / r) + math.exp(1.0 / r)],
    ], dtype=torch.float64)
    scores = knn_classify(bank, labels, queries, 2, k=3, temperature=0.1)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=0.0)


def test_separable_clusters_reach_full_accuracy() -> None:
    g = torch.Generator().manual_seed(2)
    centres = 10 * torch.eye(6, 16)
    bank_labels = torch.arange(6).repeat(20)
    query_labels = torch.arange(6).repeat(5)
    bank = centres[bank_labels] + 0.1 * torch.randn(120, 16, generator=g)
    queries = centres[query_labels] + 0.1 * torch.randn(30, 16, generator=g)
    result = knn_accuracy(bank, bank_labels, queries, query_labels, num_classes=6, k=20, chunk_size=7)
    assert result == {"top1": 100.0, "top5": 100.0}
    assert knn_accuracy(bank, bank_labels % 2, queries, query_labels % 2, num_classes=2)["top5"] is None


def test_shape_mismatches_raise() -> None:
    bank, labels, queries = random_problem(3)
    with pytest.raises(ValueError, match="feature dimension"):
        knn_classify(bank, labels, queries[:, :5], 4)
    with pytest.raises(ValueError, match="bank_labels"):
        knn_classify(bank, labels[:-1], queries, 4)
    with pytest.raises(ValueError, match="bank must be"):
        knn_classify(bank[0], labels, queries, 4)
    with pytest.raises(ValueError, match="query_labels"):
        knn_accuracy(bank, labels, queries, labels, 4)


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str,
                shards: tuple[torch.Tensor, ...], labels: tuple[torch.Tensor, ...], queries: torch.Tensor) -> None:
    """Rank ``rank`` classifies ``queries`` against its own shard and saves the scores to ``out_dir``."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        scores = knn_classify(shards[rank], labels[rank], queries, num_classes=4, k=25, temperature=0.1,
                                  chunk_size=7)
        torch.save(scores, f"{out_dir}/scores_{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sharded_bank_over_two_gloo_processes(tmp_path) -> None:
    bank, labels, queries = random_problem(4, n=54)
    shards, shard_labels = bank.split([23, 31]), labels.split([23, 31])  # shard 0 is smaller than k=25
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "pg"), str(tmp_path), shards, shard_labels, queries),
             nprocs=2, join=True)
    s0, s1 = (torch.load(tmp_path / f"scores_{r}.pt") for r in range(2))
    expected = knn_classify(bank, labels, queries, num_classes=4, k=25, temperature=0.1)
    torch.testing.assert_close(s0, s1)
    torch.testing.assert_close(s0, expected)
    reference = reference_knn(bank.numpy(), labels.numpy(), queries.numpy(), 4, 25, 0.1)
    np.testing.assert_allclose(expected.numpy(), reference, rtol=1e-10)
