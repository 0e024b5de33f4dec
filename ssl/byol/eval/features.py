"""Feature extraction from a frozen backbone, sharded over ranks under torch.distributed, and the progress bars
of the evaluation loops (:func:`track_progress`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch
import torch.distributed as dist
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn
from rich.errors import LiveError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset, Subset

T = TypeVar("T")
_live: Progress | None = None  # the display that the running bars share


def track_progress(iterable: Iterable[T], description: str, total: int | None = None,
                   enabled: bool = True) -> Iterator[T]:
    """Iterate over ``iterable`` under a rich progress bar (count, elapsed and remaining time), removed when done.

    A bar started inside another one's loop (embeddings of each encoder, epochs of each seed) joins the running
    display as another line, since rich allows one live display at a time; where another live display holds the
    terminal (e.g. Lightning's ``RichProgressBar`` during ``fit``) the loop runs without a bar.

    Args:
        total: the number of items (default: ``len(iterable)`` where it has one).
        enabled: ``False`` iterates without a bar.
    """
    global _live
    if not enabled:
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    owner = _live is None
    if owner:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TimeRemainingColumn(), transient=True)
        try:
            bar.start()
        except LiveError:
            yield from iterable
            return
        _live = bar
    display = _live
    task = display.add_task(description, total=total)
    try:
        for item in iterable:
            yield item
            display.advance(task)
    finally:
        display.remove_task(task)
        if owner:
            display.stop()
            _live = None


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    dataset: Dataset,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    gather: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of every sample of ``dataset`` from a frozen backbone in eval mode.

    Under ``torch.distributed`` each of the ``W`` ranks runs the backbone on the
    samples ``rank, rank + W, ...`` only (every sample exactly once, no padding
    duplicates), then the shards are gathered so that every rank returns all
    ``N`` features in dataset order (with ``gather=False`` each rank keeps its
    own shard, e.g. for a sharded kNN bank).

    Args:
        backbone: maps a preprocessed batch to ``(B, D)`` features.
        dataset: yields ``(input, label)``.
        preprocess: applied to each input batch on ``device`` (e.g. centre crop + normalisation).

    Returns:
        ``(features (N, D) float32 on CPU, labels (N,) int64)``.
    """
    rank, world = _world()
    shard = Subset(dataset, range(rank, len(dataset), world)) if world > 1 else dataset
    loader = DataLoader(shard, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    was_training = backbone.training
    backbone.eval().to(device)
    feats, labels = [], []
    for x, y in track_progress(loader, "features", enabled=progress and rank == 0):
        x = move_data_to_device(x, device)  # a tensor, or a dict of tensors (tables)
        if preprocess is not None:
            x = preprocess(x)
        feats.append(backbone(x).float().cpu())
        labels.append(torch.as_tensor(y))
    backbone.train(was_training)
    features, targets = torch.cat(feats), torch.cat(labels).long()
    if world > 1 and gather:
        features, targets = _gather_strided(features, targets, len(dataset), world)
    return features, targets


def _gather_strided(
    features: torch.Tensor, labels: torch.Tensor, n: int, world: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reassemble shards ``rank::world`` from every rank into dataset order."""
    backend_device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    longest = (n + world - 1) // world
    pad = longest - features.shape[0]
    local = torch.cat([features, features.new_zeros(pad, features.shape[1])]).to(backend_device)
    local_y = torch.cat([labels, labels.new_full((pad,), -1)]).to(backend_device)
    all_x = [torch.empty_like(local) for _ in range(world)]
    all_y = [torch.empty_like(local_y) for _ in range(world)]
    dist.all_gather(all_x, local)
    dist.all_gather(all_y, local_y)
    out_x = features.new_empty(n, features.shape[1])
    out_y = labels.new_empty(n)
    for r in range(world):
        count = len(range(r, n, world))
        out_x[r::world] = all_x[r][:count].cpu()
        out_y[r::world] = all_y[r][:count].cpu()
    return out_x, out_y
