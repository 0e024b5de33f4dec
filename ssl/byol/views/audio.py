"""BYOL-A views, computed on the device from batches of raw waveforms.

The pipeline of BYOL-A (Niizumi et al. 2021, arXiv:2103.06695; v2: Niizumi et al. 2023, arXiv:2204.07402), per
batch of waveforms ``(B, L)``:

1. log-mel front end (:class:`LogMelSpectrogram`): ``(B, 1, 64, 96)`` for 0.95 s at 16 kHz;
2. pre-normalisation (:class:`RunningNorm` in v1, :class:`DatasetNorm` in v2);
3. per view, with parameters drawn per sample: mixup with past inputs (:class:`MixupBYOLA`) -> random resize
   crop (:class:`RandomResizeCrop`) -> random linear fader (:class:`RandomLinearFader`, v2 only);
4. post-normalisation over the batch of both views together (:class:`NormalizeBatch`).

=========================  ============================  ============================
component                  v1 (:class:`BYOLAv1Views`)    v2 (:class:`BYOLAViews`)
=========================  ============================  ============================
pre-normalisation          running, frozen after 10 ep.  training-set statistics
mixup ratio / memory       0.4 / 2,048                   0.2 / 512
random resize crop         canvas 1.0 F x 1.5 T, crop 0.6-1.5 on each axis (both)
random linear fader        off                           gain 1.0
=========================  ============================  ============================
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from .audio_augment import MixupBYOLA, RandomLinearFader, RandomResizeCrop, log_mixup_exp
from .audio_frontend import LogMelPreprocess, LogMelSpectrogram
from .audio_norm import DatasetNorm, NormalizeBatch, PreNorm, RunningNorm, log_mel_moments

__all__ = [
    "BYOLAViews", "BYOLAv1Views", "DatasetNorm", "LogMelPreprocess", "LogMelSpectrogram", "MixupBYOLA",
    "NormalizeBatch", "PreNorm", "RandomLinearFader", "RandomResizeCrop", "RunningNorm", "log_mel_moments",
    "log_mixup_exp",
]


class BYOLAViews(nn.Module):
    """Two BYOL-A views of a batch of waveforms ``(B, L)``; defaults are BYOL-A v2's.

    Args:
        segment_seconds: length of the training segments (the dataset's); fixes the frames ``T``.
        pre_norm: ``"dataset"`` (v2: training-set statistics, computed by the method before training unless
            ``norm_stats`` is given) or ``"running"`` (v1: running estimate during the first
            ``norm_update_epochs`` epochs).
        norm_stats: known ``(mean, std)`` for ``pre_norm="dataset"``.
        norm_update_epochs: epochs of running updates for ``pre_norm="running"``.
        statistics_samples: random training clips whose log-mels give the ``pre_norm="dataset"`` statistics.
        mixup_ratio, mixup_memory: :class:`MixupBYOLA`'s ratio and bank size (``mixup_ratio=0`` turns it off).
        virtual_crop_scale, freq_scale, time_scale: :class:`RandomResizeCrop`.
        fader_gain: :class:`RandomLinearFader`'s gain, ``None`` for no fader (v1).
        front_end: the log-mel front end's arguments (:class:`LogMelSpectrogram`: ``sample_rate``, ``n_fft``,
            ``win_length``, ``hop_length``, ``n_mels``, ``f_min``, ``f_max``, ``mel_scale``, ``mel_norm``); its
            defaults are BYOL-A's.

    Attributes:
        shape: ``(F, T)`` of the log-mels.
    """

    def __init__(
        self,
        *,
        segment_seconds: float = 0.95,
        pre_norm: Literal["dataset", "running"] = "dataset",
        norm_stats: tuple[float, float] | None = None,
        norm_update_epochs: float = 10.0,
        statistics_samples: int = 10000,
        mixup_ratio: float = 0.2,
        mixup_memory: int = 512,
        virtual_crop_scale: tuple[float, float] = (1.0, 1.5),
        freq_scale: tuple[float, float] = (0.6, 1.5),
        time_scale: tuple[float, float] = (0.6, 1.5),
        fader_gain: float | None = 1.0,
        **front_end: Any,
    ) -> None:
        super().__init__()
        if pre_norm not in ("dataset", "running"):
            raise ValueError(f"pre_norm must be 'dataset' or 'running', got {pre_norm!r}")
        if pre_norm == "running" and norm_stats is not None:
            raise ValueError("norm_stats are for pre_norm='dataset'; the running norm estimates its own")
        self.front_end = LogMelSpectrogram(**front_end)
        self.segment_samples = round(segment_seconds * self.front_end.sample_rate)
        self.shape = (self.front_end.n_mels, self.front_end.num_frames(self.segment_samples))
        self.pre_norm: PreNorm = (
            DatasetNorm(*(norm_stats or (None, None))) if pre_norm == "dataset" else RunningNorm(norm_update_epochs)
        )
        self.mixup = MixupBYOLA(mixup_ratio, mixup_memory, self.shape) if mixup_ratio > 0 else None
        self.crop = RandomResizeCrop(virtual_crop_scale, freq_scale, time_scale)
        self.fader = RandomLinearFader(fader_gain) if fader_gain is not None else None
        self.post_norm = NormalizeBatch()
        self.statistics_samples = statistics_samples
        self.epoch: int | None = None  # the training epoch (set_epoch), for the running pre-normalisation

    # ----- what a training loop tells the views ---------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """The training epoch (0-based): training batches of the first epochs update a running pre-norm."""
        self.epoch = epoch

    @property
    def needs_statistics(self) -> bool:
        """Whether the dataset pre-normalisation still waits for :meth:`set_statistics`."""
        return self.pre_norm.needs_statistics

    def statistics_moments(self, waveforms: Tensor) -> Tensor:
        """Additive moments (count, sum, sum of squares) of a batch's log-mels, to be summed over batches."""
        return log_mel_moments(self.log_mel(waveforms))

    def set_statistics(self, moments: Tensor, clips: int) -> str:
        """Set the dataset pre-normalisation from the summed moments of ``clips`` clips; returns a report line."""
        norm = self.pre_norm
        assert isinstance(norm, DatasetNorm)
        norm.set_from_moments(moments)
        mean, std = norm.statistics()
        return f"BYOL-A pre-normalisation: log-mel mean {mean:.4f}, std {std:.4f} over {clips} clips"

    def log_mel(self, waveforms: Tensor) -> Tensor:
        """The front end alone: ``(B, L)`` to ``(B, 1, F, T)``, not normalised."""
        return self.front_end(waveforms)

    def augment(self, x: Tensor) -> Tensor:
        """One view of pre-normalised log-mels ``(B, 1, F, T)``: mixup -> random resize crop -> fader."""
        if self.mixup is not None:
            x = self.mixup(x)
        x = self.crop(x)
        return self.fader(x) if self.fader is not None else x

    def forward(self, waveforms: Tensor, epoch: int | None = None) -> tuple[Tensor, Tensor]:
        """Two post-normalised float32 views ``(B, 1, F, T)`` of waveforms ``(B, segment_samples)``.

        ``epoch`` (0-based; default: the one :meth:`set_epoch` gave) is the training epoch, for the running
        pre-normalisation; ``None`` leaves the statistics unchanged. The batch is pushed into the mixup memory
        after both views are drawn.
        """
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            x = self.pre_normalised(waveforms, epoch)
            v1, v2 = self.augment(x), self.augment(x)
            if self.mixup is not None:
                self.mixup.remember(x)
            both = self.post_norm(torch.cat([v1, v2]))
            return both[: len(x)], both[len(x) :]

    def pre_normalised(self, waveforms: Tensor, epoch: int | None = None) -> Tensor:
        """Training segments ``(B, segment_samples)`` to pre-normalised log-mels ``(B, 1, F, T)``, updating a running
        pre-normalisation with them during its epochs (``epoch``: default the one :meth:`set_epoch` gave)."""
        epoch = self.epoch if epoch is None else epoch
        if waveforms.ndim != 2 or waveforms.shape[1] != self.segment_samples:
            raise ValueError(f"expected waveforms (B, {self.segment_samples}) (segment_seconds at sample_rate), "
                             f"got {tuple(waveforms.shape)}: the dataset's segment must match the views'")
        lms = self.front_end(waveforms)
        if epoch is not None:
            self.pre_norm.update(lms, epoch)
        return self.pre_norm(lms)

    def preprocess(self, waveforms: Tensor) -> Tensor:
        """The deterministic evaluation transform: pre-normalised log-mels ``(B, 1, F, T')`` of ``(B, L')``."""
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            return self.pre_norm(self.front_end(waveforms))

    @property
    def preprocessing(self) -> LogMelPreprocess:
        """:meth:`preprocess` as a standalone module with the current statistics (what export stores)."""
        mean, std = self.pre_norm.statistics()
        return LogMelPreprocess(**self.front_end.settings(), mean=mean, std=std)


class BYOLAv1Views(BYOLAViews):
    """BYOL-A v1's views (Niizumi et al. 2021): running pre-normalisation, mixup 0.4 with 2,048 past inputs,
    random resize crop, no fader."""

    def __init__(
        self,
        pre_norm: Literal["dataset", "running"] = "running",
        mixup_ratio: float = 0.4,
        mixup_memory: int = 2048,
        fader_gain: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pre_norm=pre_norm, mixup_ratio=mixup_ratio, mixup_memory=mixup_memory, fader_gain=fader_gain,
                         **kwargs)
