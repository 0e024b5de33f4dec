"""A datamodule over any map-style datasets: batching only, no transforms (views are made on the device)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from .device_data import DeviceBatches, check_array_backed
from .image_datasets import collate_images
from .resumable import ResumableDataLoader


class DataModule(L.LightningDataModule):
    """Wraps a training dataset (and optionally a labeled validation one) into DataLoaders.

    Datasets yield ``(sample, label)`` with ``label = -1`` for unlabeled
    samples and do nothing random; the method turns batches into views on the
    device.

    Args:
        train: the pretraining dataset.
        val: a labeled dataset for the online probe's validation accuracy (a
            monitor, not the final evaluation).
        batch_size: per-device batch size.
        num_workers: DataLoader worker processes.
        drop_last: drop the last incomplete training batch (keeps BN statistics
            and the step count stable).
        on_device: hold the whole training set on the training device
            (``trainer.strategy.root_device``) as one uint8 tensor and make the
            batches there by index (:class:`~byol.data.device_data.DeviceBatches`):
            no workers, no per-sample decoding. Same samples in the same order,
            same DDP shards and the same resumable state as the worker loader,
            so switching it never changes training. Array-backed datasets only
            (CIFAR10, CIFAR100, STL10, MNIST, FashionMNIST, Digits, or a Subset
            of one): anything else raises ``TypeError``. The validation set is
            still read by workers.

    Batches are collated by :func:`~byol.data.image_datasets.collate_images`
    (``default_collate``, except for the still-encoded JPEGs of
    ``ImageFolder(decode="device")``, which decode on the way to the device).
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset | None = None,
        batch_size: int = 256,
        num_workers: int = 4,
        drop_last: bool = True,
        on_device: bool = False,
    ) -> None:
        super().__init__()
        if len(train) == 0:
            raise ValueError("the training dataset is empty")
        if drop_last and len(train) < batch_size:
            raise ValueError(
                f"batch_size={batch_size} is larger than the training set ({len(train)} samples) and "
                "drop_last=True would leave no batch; lower data.batch_size"
            )
        if on_device:
            check_array_backed(train)
        self.train_set, self.val_set = train, val
        self.batch_size, self.num_workers, self.drop_last = batch_size, num_workers, drop_last
        self.on_device = on_device
        self._train_loader: ResumableDataLoader | DeviceBatches | None = None
        self._loader_state: dict | None = None

    def _loader_kwargs(self) -> dict:
        return dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_images,
        )

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        """Shuffled by epoch from the run's seed, split over ranks, resumable mid-epoch; on the device if asked."""
        seed = torch.initial_seed() % 2**31
        if self.on_device:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            self._train_loader = DeviceBatches(self.train_set, self.batch_size, device, seed, self.drop_last)
        else:
            self._train_loader = ResumableDataLoader(
                self.train_set, seed=seed, drop_last=self.drop_last, **self._loader_kwargs()
            )
        if self._loader_state is not None:
            self._train_loader.load_state_dict(self._loader_state)
        return self._train_loader

    # Lightning saves these with every checkpoint and restores them on resume. (It also checkpoints the
    # loader itself, but restores that state only when the loader is created after the restore, which
    # `estimated_stepping_batches` prevents; loading the same state twice is harmless.)
    def state_dict(self) -> dict:
        return {} if self._train_loader is None else {"train_loader": self._train_loader.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._loader_state = state.get("train_loader")
        if self._loader_state is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(self._loader_state)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else DataLoader(self.val_set, shuffle=False, **self._loader_kwargs())
