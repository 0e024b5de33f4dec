"""Tests for byol.eval.plots: t-SNE maps, metrics.csv parsing and training-curve figures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

from byol.eval.plots import embed_2d, find_metrics_csv, plot_embedding_map, plot_training_curves, read_metrics_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _single_thread():
    """t-SNE's OpenMP threads spin-wait badly on a shared 2-core machine; one thread is much faster here."""
    with threadpool_limits(limits=1):
        yield


def _clusters(n_per_class: int = 20, dim: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3 unit-std Gaussian clusters whose means differ in every dimension: ``((3n, dim), (3n,))``.

    The means are spread over all dimensions so the clusters stay apart after per-dimension standardisation.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(3, dim))
    x = np.concatenate([rng.normal(m, 1.0, size=(n_per_class, dim)) for m in means])
    y = np.repeat(np.arange(3), n_per_class)
    return x.astype(np.float32), y


def _loo_1nn_accuracy(coords: np.ndarray, labels: np.ndarray) -> float:
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def _assert_real_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert np.unique(image.reshape(-1, image.shape[2]), axis=0).shape[0] > 1


def test_embed_2d_keeps_clusters_separated():
    x, y = _clusters()
    coords, indices = embed_2d(torch.from_numpy(x), seed=0)
    assert coords.shape == (60, 2)
    np.testing.assert_array_equal(indices, np.arange(60))
    assert _loo_1nn_accuracy(coords, y[indices]) >= 0.95


def test_embed_2d_subsamples_and_is_deterministic():
    x = np.random.default_rng(1).normal(size=(80, 60))  # D > 50 takes the PCA path
    coords, indices = embed_2d(x, seed=3, max_points=40)
    assert coords.shape == (40, 2)
    assert indices.shape == (40,)
    assert np.unique(indices).size == 40
    assert indices.min() >= 0 and indices.max() < 80

    coords_again, indices_again = embed_2d(x, seed=3, max_points=40)
    np.testing.assert_array_equal(indices_again, indices)
    np.testing.assert_allclose(coords_again, coords)

    _, indices_other = embed_2d(x, seed=4, max_points=40)
    assert not np.array_equal(indices_other, indices)


def test_plot_embedding_map_writes_png_with_unlabeled_points(tmp_path):
    x, y = _clusters(n_per_class=10)
    y[::7] = -1
    target = tmp_path / "sub" / "map.png"
    path = plot_embedding_map(x, torch.from_numpy(y), target, class_names=["a", "b", "c"], title="t")
    assert path == target
    _assert_real_png(path)


def test_plot_embedding_map_rejects_mismatched_labels(tmp_path):
    x, y = _clusters(n_per_class=5)
    with pytest.raises(ValueError, match="labels"):
        plot_embedding_map(x, y[:-1], tmp_path / "map.png")
    with pytest.raises(ValueError, match="class_names"):
        plot_embedding_map(x, y, tmp_path / "map.png", class_names=["a", "b"])


METRICS_CSV = """epoch,step,train/loss_step,val/probe_top1
0,9,1.5,
0,19,1.25,
0,19,,0.4
1,29,0.75,
1,39,,0.625
"""


def _write_metrics(tmp_path: Path, text: str = METRICS_CSV) -> Path:
    path = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_read_metrics_csv_returns_sparse_series(tmp_path):
    series = read_metrics_csv(_write_metrics(tmp_path))
    assert series == {
        "train/loss_step": [(9, 1.5), (19, 1.25), (29, 0.75)],
        "val/probe_top1": [(19, 0.4), (39, 0.625)],
    }


def test_read_metrics_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_metrics_csv(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_metrics_csv(bad)


def test_plot_training_curves_writes_png(tmp_path):
    csv_path = _write_metrics(tmp_path)
    out = plot_training_curves(csv_path, tmp_path / "figs" / "curves.png")
    _assert_real_png(out)
    out_one = plot_training_curves(csv_path, tmp_path / "one.png", keys=["val/probe_top1"])
    _assert_real_png(out_one)
    # a single subplot gives a narrower figure than the default two
    assert imread(out_one).shape[1] < imread(out).shape[1]


def test_plot_training_curves_unknown_key_lists_available(tmp_path):
    csv_path = _write_metrics(tmp_path)
    with pytest.raises(ValueError, match="available") as err:
        plot_training_curves(csv_path, tmp_path / "c.png", keys=["train/nope"])
    assert "train/loss_step" in str(err.value) and "val/probe_top1" in str(err.value)
    assert not (tmp_path / "c.png").exists()


def test_find_metrics_csv_picks_newest(tmp_path):
    old = _write_metrics(tmp_path)
    new = tmp_path / "lightning_logs" / "version_1" / "metrics.csv"
    new.parent.mkdir()
    new.write_text(METRICS_CSV)
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    assert find_metrics_csv(tmp_path) == new
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        find_metrics_csv(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        find_metrics_csv(empty)
