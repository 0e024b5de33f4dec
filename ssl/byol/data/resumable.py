"""A DataLoader that resumes mid-epoch exactly: deterministic order per epoch, and a state Lightning checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Shuffled order that is a pure function of ``(seed, epoch)``, split over DDP ranks.

    A ``DistributedSampler`` (so Lightning keeps it under DDP rather than
    wrapping it) that also works without a process group (one replica), and
    that skips the first ``skip`` samples of epoch ``skip_epoch`` (mid-epoch
    resume); any other epoch is read whole.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(
            dataset,
            num_replicas=dist.get_world_size() if distributed else 1,
            rank=dist.get_rank() if distributed else 0,
            shuffle=shuffle,
            seed=seed,
        )
        self.skip, self.skip_epoch = 0, -1

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip = self.skip if self.epoch == self.skip_epoch else 0
        self.skip = 0
        return iter(indices[skip:])


class ResumableBatches:
    """The resumable state of a batch loader over a :class:`ResumableSampler`: its epoch and the batches delivered.

    Shared by :class:`ResumableDataLoader` and :class:`~byol.data.device_data.DeviceBatches`, so their
    ``state_dict`` is the same ``{"epoch", "batches"}`` and a checkpoint of one resumes the other.
    Users set ``sampler``, ``batch_size`` and ``delivered``.
    """

    sampler: ResumableSampler
    batch_size: int
    delivered: int

    def _start_epoch(self) -> None:
        """Call as an epoch's iteration starts, before the sampler is read: a resumed epoch starts at its skip."""
        resumed = self.sampler.epoch == self.sampler.skip_epoch
        self.delivered = self.sampler.skip // self.batch_size if resumed else 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self.delivered}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip what epoch ``state["epoch"]`` already delivered; a finished epoch leaves nothing to skip in the next."""
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip_epoch = state["epoch"]
        self.sampler.skip = state["batches"] * self.batch_size


class ResumableDataLoader(ResumableBatches, DataLoader):
    """DataLoader with ``state_dict``/``load_state_dict``, which Lightning saves in its checkpoints.

    The state is the sampler's epoch and the number of batches this loader has
    delivered in it; on load, the next iteration skips those batches, so a run
    resumed from a mid-epoch checkpoint sees exactly the batches it would have
    seen. Batches are counted as they leave the loader (Lightning does not
    prefetch from a loader whose length is known).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=ResumableSampler(dataset, seed=seed), **kwargs)
        self.seed = seed
        self.delivered = 0

    def __iter__(self) -> Iterator[Any]:
        self._start_epoch()
        for batch in super().__iter__():
            self.delivered += 1
            yield batch
