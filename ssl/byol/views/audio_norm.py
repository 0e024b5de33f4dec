"""Normalisation of log-mel spectrograms in BYOL-A: pre-normalisation before the augmentations, post-normalisation
after them (Niizumi et al. 2021, arXiv:2103.06695, "Pre-normalization" and "Post-normalization"; Niizumi et al.
2023, arXiv:2204.07402).

Pre-normalisation standardises log-mels ``(B, 1, F, T)`` with one scalar mean and std, so that the mixup and the
fader act on inputs of a known scale: v1 keeps a running estimate frozen after a warm-up (:class:`RunningNorm`),
v2 computes the statistics of the training set once before training (:class:`DatasetNorm`). Both keep their
statistics in persistent buffers, so checkpoints carry them and a resumed run normalises exactly as before.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

_EPS = float(torch.finfo(torch.float32).eps)


def log_mel_moments(log_mels: Tensor) -> Tensor:
    """``[count, sum, sum of squares]`` (float64, ``(3,)``) of every value of a batch ``(B, 1, F, T)``.

    Moments add up over batches and over DDP ranks (all-reduce with sum); :meth:`DatasetNorm.set_from_moments`
    turns their total into a mean and std.
    """
    x = log_mels.detach().double()
    return torch.stack([x.new_tensor(float(x.numel())), x.sum(), x.square().sum()])


class PreNorm(nn.Module):
    """Pre-normalisation ``(x - mean) / std`` of log-mels ``(B, 1, F, T)`` with scalar statistics.

    Subclasses decide where the statistics come from. ``mean`` and ``std`` are persistent float64 buffers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("std", torch.ones((), dtype=torch.float64))

    @property
    def needs_statistics(self) -> bool:
        """Whether dataset statistics must be set (:class:`DatasetNorm`) before the first batch."""
        return False

    def update(self, log_mels: Tensor, epoch: int) -> None:
        """Observe a training batch in epoch ``epoch`` (0-based); a no-op unless the statistics are running."""

    def statistics(self) -> tuple[float, float]:
        """``(mean, std)`` as Python floats."""
        return float(self.mean), float(self.std)

    def forward(self, log_mels: Tensor) -> Tensor:
        return (log_mels - self.mean.float()) / self.std.float()


class DatasetNorm(PreNorm):
    """v2's pre-normalisation: the mean and std of the training set's log-mels, computed once before training.

    BYOL-A v2 (Niizumi et al. 2023) takes them over (up to) 10,000 random training clips; the method's core
    (:class:`byol.core.Method`) does so through the views at the start of fit when they are not given here.

    Args:
        mean, std: known statistics; leave both ``None`` to compute them from the data.
    """

    def __init__(self, mean: float | None = None, std: float | None = None) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.register_buffer("ready", torch.tensor(mean is not None))
        self._ready = mean is not None  # the host's copy of `ready`: forward never reads the device
        self.register_load_state_dict_post_hook(DatasetNorm._ready_loaded)
        if mean is not None:
            self.set_statistics(mean, std)

    @staticmethod
    def _ready_loaded(module: DatasetNorm, incompatible_keys: Any) -> None:
        module._ready = bool(module.ready)

    @property
    def needs_statistics(self) -> bool:
        return not self._ready

    def set_statistics(self, mean: float, std: float) -> None:
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}: are all training clips silent?")
        self.mean.fill_(mean)
        self.std.fill_(std)
        self.ready.fill_(True)
        self._ready = True

    def set_from_moments(self, moments: Tensor) -> None:
        """Set mean and (population) std from the total of :func:`log_mel_moments` over the data."""
        count, total, squares = moments.double().tolist()
        if count == 0:
            raise ValueError("no log-mel values to compute the statistics from")
        mean = total / count
        self.set_statistics(mean, max(squares / count - mean * mean, 0.0) ** 0.5)

    def forward(self, log_mels: Tensor) -> Tensor:
        if self.needs_statistics:
            raise RuntimeError("DatasetNorm has no statistics yet: give mean/std or call set_statistics() first")
        return super().forward(log_mels)


class RunningNorm(PreNorm):
    """v1's pre-normalisation: running mean and std of the training log-mels, frozen after ``update_epochs``.

    BYOL-A v1 (Niizumi et al. 2021) updates the statistics during the first 10 epochs, then normalises with the
    last estimate. The estimate here is the exact mean and population std of every value seen so far (batches
    combined with Chan et al.'s parallel formula, in float64).

    NOTE: the reference code averages per-clip means with an off-by-one step (its second update replaces the
    first) and estimates the variance around the moving mean; this computes the exact cumulative statistics.
    Under DDP each rank estimates from its own batches.

    Args:
        update_epochs: epochs (from 0) during which training batches update the statistics.
    """

    def __init__(self, update_epochs: float = 10.0) -> None:
        super().__init__()
        self.update_epochs = update_epochs
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("m2", torch.zeros((), dtype=torch.float64))

    def update(self, log_mels: Tensor, epoch: int) -> None:
        if epoch >= self.update_epochs:
            return
        x = log_mels.detach().double()
        n, mean = float(x.numel()), x.mean()
        m2 = (x - mean).square().sum()
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta.square() * self.count * n / total
        self.mean += delta * n / total
        self.count.copy_(total)
        self.std.copy_((self.m2 / total).sqrt().clamp_min(_EPS))


class NormalizeBatch(nn.Module):
    """Post-normalisation: standardise a batch ``(N, C, F, T)`` per channel over ``(N, F, T)``.

    BYOL-A applies it to the batch of both augmented views together (Niizumi et al. 2021), so the encoder
    always sees inputs of mean 0 and std 1. The std is the unbiased one, clamped below at float32's eps.
    """

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(_EPS)
        return (x - mean) / std
