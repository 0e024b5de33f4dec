"""Figures for evaluating runs: 2-D t-SNE maps of features and training curves from ``metrics.csv``.

Every figure is drawn on its own ``matplotlib.figure.Figure`` with an Agg canvas,
so nothing here touches pyplot or the global matplotlib backend.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

DEFAULT_CURVE_KEYS = (
    "train/loss_step",
    "train/loss_epoch",
    "train/probe_acc_epoch",
    "val/probe_top1",
    "train/rankme",
    "train/proj_std",
    "train/tau",
    "train/lr",
)
_INDEX_COLUMNS = ("epoch", "step")
_UNLABELED_COLOUR = (0.8, 0.8, 0.8, 1.0)
_MAX_LEGEND_CLASSES = 20
_DPI = 150


def _to_numpy(array: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, format="png")
    return path


def embed_2d(
    features: torch.Tensor | np.ndarray, seed: int = 0, max_points: int = 5000
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce ``(N, D)`` features to a 2-D t-SNE map.

    Features are standardised per dimension, projected onto their first 50
    principal components when ``D > 50``, then embedded with t-SNE
    (perplexity ``min(30, (n - 1) / 3)``, PCA initialisation). When
    ``N > max_points`` a random subset of ``max_points`` rows, drawn with ``seed``,
    is embedded instead.

    Args:
        features: ``(N, D)`` array or tensor, ``N >= 2``.
        seed: seeds both the subset and t-SNE; equal seeds give equal maps.
        max_points: largest number of points embedded.

    Returns:
        ``(coords (n, 2) float64, indices (n,) int64)``: ``indices`` are the sorted
        rows of ``features`` that were kept, ``coords[i]`` belongs to ``features[indices[i]]``.
    """
    x = _to_numpy(features).astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"t-SNE needs at least 2 points, got {x.shape[0]}")
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")

    indices = np.arange(x.shape[0], dtype=np.int64)
    if x.shape[0] > max_points:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(x.shape[0], size=max_points, replace=False)).astype(np.int64)
        x = x[indices]

    x = (x - x.mean(0, keepdims=True)) / (x.std(0, keepdims=True) + 1e-6)
    n, dim = x.shape
    if dim > 50:
        x = PCA(n_components=min(50, n), random_state=seed).fit_transform(x)

    tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed)
    return tsne.fit_transform(x).astype(np.float64), indices


def _class_colours(num_classes: int) -> np.ndarray:
    """``(num_classes, 4)`` RGBA colours from a qualitative palette (tab10, tab20, else sampled turbo)."""
    if num_classes <= 10:
        return colormaps["tab10"](np.arange(num_classes))
    if num_classes <= 20:
        return colormaps["tab20"](np.arange(num_classes))
    return colormaps["turbo"](np.linspace(0.0, 1.0, num_classes))


def plot_embedding_map(
    features: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    path: str | Path,
    class_names: list[str] | None = None,
    title: str = "",
    seed: int = 0,
    max_points: int = 5000,
) -> Path:
    """Save a PNG of the 2-D t-SNE map of ``features`` coloured by label.

    Args:
        features: ``(N, D)`` features, embedded with :func:`embed_2d`.
        labels: ``(N,)`` integer labels; ``-1`` marks unlabeled samples, drawn in light grey.
        path: PNG file to write; its parent folder is created.
        class_names: names indexed by label value, shown in the legend (at most 20 classes get a legend).
        title: figure title.
        seed, max_points: passed to :func:`embed_2d`.

    Returns:
        ``path`` as a ``Path``.
    """
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    n_features = _to_numpy(features).shape[0]
    if y.shape[0] != n_features:
        raise ValueError(f"got {y.shape[0]} labels for {n_features} feature rows")
    if (y < -1).any():
        raise ValueError("labels must be >= 0, or -1 for unlabeled samples")
    classes = np.unique(y[y >= 0])
    if class_names is not None and classes.size and classes[-1] >= len(class_names):
        raise ValueError(f"label {classes[-1]} has no entry in class_names ({len(class_names)} names)")

    coords, indices = embed_2d(features, seed=seed, max_points=max_points)
    y = y[indices]

    fig = _new_figure(7.0, 6.0)
    ax = fig.add_subplot()
    unlabeled = y < 0
    if unlabeled.any():
        ax.scatter(*coords[unlabeled].T, s=6, color=_UNLABELED_COLOUR, label="unlabeled", linewidths=0)
    for colour, c in zip(_class_colours(classes.size), classes):
        name = class_names[c] if class_names is not None else str(c)
        ax.scatter(*coords[y == c].T, s=8, color=colour, label=name, linewidths=0)
    if classes.size <= _MAX_LEGEND_CLASSES:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", markerscale=2, frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of {coords.shape[0]} points")
    fig.tight_layout()
    return _save(fig, path)


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read a Lightning ``CSVLogger`` ``metrics.csv``.

    Each row logs a subset of the metric columns; empty cells are skipped.

    Returns:
        ``{metric: [(step, value), ...]}`` in file order, for every column except
        ``epoch`` and ``step`` (a metric never logged maps to an empty list).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "step" not in columns:
            raise ValueError(f"{path} has no 'step' column (columns: {columns})")
        series: dict[str, list[tuple[int, float]]] = {c: [] for c in columns if c not in _INDEX_COLUMNS}
        for row in reader:
            step = int(float(row["step"]))
            for key, points in series.items():
                cell = row[key]
                if cell not in (None, ""):
                    points.append((step, float(cell)))
    return series


def plot_training_curves(metrics_csv: str | Path, path: str | Path, keys: list[str] | None = None) -> Path:
    """Save a PNG with one subplot per metric against the global step, in a grid of at most 3 columns.

    Args:
        metrics_csv: a Lightning ``CSVLogger`` ``metrics.csv``.
        path: PNG file to write; its parent folder is created.
        keys: metrics to draw. By default those of :data:`DEFAULT_CURVE_KEYS` present
            in the file, or every metric column when none of them is.

    Returns:
        ``path`` as a ``Path``.
    """
    series = read_metrics_csv(metrics_csv)
    available = sorted(series)
    if keys is None:
        keys = [k for k in DEFAULT_CURVE_KEYS if k in series] or available
    missing = [k for k in keys if k not in series]
    if missing:
        raise ValueError(f"metrics {missing} not in {metrics_csv}; available: {available}")
    if not keys:
        raise ValueError(f"no metrics to plot in {metrics_csv}")

    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig = _new_figure(4.0 * ncols, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = series[key]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if len(points) <= 20 else None, markersize=3, linewidth=1.2)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def find_metrics_csv(run_dir: str | Path) -> Path:
    """Return the most recently modified ``metrics.csv`` anywhere under ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    candidates = [p for p in run_dir.rglob("metrics.csv") if p.is_file()]
    if not candidates:
        raise FileNotFoundError(f"no metrics.csv under {run_dir}")
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, str(p)))
