"""Small array-backed datasets held whole on the training device, batched there by index.

:class:`DeviceBatches` keeps the images as one ``(N, C, H, W)`` uint8 tensor and the labels as one ``(N,)``
int64 tensor on the device, and yields ``[images[idx], labels[idx]]`` for the index batches of a
:class:`~byol.data.resumable.ResumableSampler`: no workers, no per-sample ``__getitem__``, no collate. The
indices are exactly those of :class:`~byol.data.resumable.ResumableDataLoader` with the same seed (same order,
same DDP shard, same mid-epoch resume and the same ``state_dict``), so switching between the two never changes
training. ``byol.data.DataModule(on_device=True)`` builds one on ``trainer.strategy.root_device``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .image_datasets import _ArrayImages
from .resumable import ResumableBatches, ResumableSampler

ARRAY_BACKED = "CIFAR10, CIFAR100, STL10, MNIST, FashionMNIST, Digits"


def is_array_backed(dataset: Dataset) -> bool:
    """Whether ``dataset`` is one of the array-backed image datasets, or a (nested) ``Subset`` of one."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, _ArrayImages)


def check_array_backed(dataset: Dataset) -> None:
    """Raise a ``TypeError`` naming the dataset's type unless :func:`is_array_backed`."""
    if not is_array_backed(dataset):
        raise TypeError(
            f"on_device=True holds the whole training set on the device and needs an array-backed dataset "
            f"({ARRAY_BACKED}, or a Subset of one); got {type(dataset).__name__}. Set data.on_device: false "
            "to read it with DataLoader workers."
        )


def array_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C, H, W)`` uint8 images and ``(N,)`` int64 labels of an array-backed dataset, on the host.

    ``images[i], labels[i]`` equal ``dataset[i]``; a ``Subset`` selects its indices from its dataset's arrays.
    """
    check_array_backed(dataset)
    if isinstance(dataset, Subset):
        images, labels = array_tensors(dataset.dataset)
        chosen = torch.as_tensor(np.asarray(dataset.indices, dtype=np.int64))
        return images[chosen], labels[chosen]
    return dataset.arrays()


class DeviceBatches(ResumableBatches):
    """The training batches of an array-backed dataset, indexed on the device where the whole dataset lives.

    Iterating yields ``[images, labels]``: ``(B, C, H, W)`` uint8 and ``(B,)`` int64 on ``device``, the same
    samples in the same order as ``ResumableDataLoader(dataset, batch_size, seed, drop_last=drop_last)``. Each
    epoch, the sampler's indices (made on the host from a seeded ``torch.Generator``, as ``DistributedSampler``
    does, and split over the DDP ranks the same way) are copied to the device once, without waiting for it;
    batches are then slices of that index tensor and an ``index_select``: nothing is read back from the device.

    Lightning calls ``sampler.set_epoch`` at each epoch and saves ``state_dict`` in checkpoints, as for the
    worker loader. ``dataset``, ``batch_size`` and ``num_workers`` (0) are there for code that inspects loaders.

    Args:
        dataset: an array-backed dataset (see :func:`check_array_backed`).
        batch_size: per-device batch size ``B``.
        device: where the data are held and the batches made.
        seed: seed of the shuffled order (with the epoch).
        drop_last: drop the last incomplete batch of each epoch.
    """

    num_workers = 0

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        images, labels = array_tensors(dataset)
        self.dataset, self.batch_size, self.seed, self.drop_last = dataset, batch_size, seed, drop_last
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.sampler = ResumableSampler(dataset, seed=seed)
        self.delivered = 0

    def __len__(self) -> int:
        """Batches in a whole epoch on this rank (as ``len`` of the worker loader)."""
        samples = len(self.sampler)
        return samples // self.batch_size if self.drop_last else -(-samples // self.batch_size)

    def _epoch_indices(self) -> torch.Tensor:
        """This epoch's remaining sample indices on this rank, ``(M,)`` int64 on the device."""
        order = torch.from_numpy(np.fromiter(self.sampler, dtype=np.int64))
        if self.device.type == "cuda":
            order = order.pin_memory()  # so that the copy below does not wait for the device
        return order.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        self._start_epoch()
        order = self._epoch_indices()
        count = len(order) // self.batch_size if self.drop_last else -(-len(order) // self.batch_size)
        for start in range(0, count * self.batch_size, self.batch_size):
            chosen = order[start : start + self.batch_size]
            self.delivered += 1
            yield [self.images.index_select(0, chosen), self.labels.index_select(0, chosen)]
