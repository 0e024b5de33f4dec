"""DINO multi-crop views of audio: BYOL-A's log-mel pipeline with two global crops and ``L`` shorter local crops.

The log-mel analogue of DINO's image multi-crop (Caron et al. 2021; :mod:`byol.views.multi_crop`), built on the
pieces of BYOL-A (Niizumi et al. 2021, arXiv:2103.06695; 2023, arXiv:2204.07402; :mod:`byol.views.audio`). Per batch
of waveforms ``(B, L)``:

1. log-mel front end and pre-normalisation, exactly as :class:`BYOLAViews`: ``(B, 1, F, T)``;
2. every sample repeated ``2 + L`` times, and mixup with past inputs drawn per row (one call for all crops);
3. global crops: BYOL-A's random resize crop (:class:`RandomResizeCrop`) of the first ``2B`` rows, full
   length ``T``; local crops: :class:`RandomLocalCrop` of the other ``L * B`` rows, a window inside the clip
   resized to ``local_frames`` (default ``T // 2``) frames; then the random linear fader;
4. post-normalisation with one mean and std over every value of every crop (BYOL-A normalises its two views
   together; here all the crops of the batch).

Image crops zoom on a part of the image at a lower resolution; the local crops here keep a part of the clip
in time: a window of ``u * T`` frames, ``u ~ U(local_time_scale)``, starting anywhere in the clip, resized to
``local_frames``. By default ``local_time_scale`` is BYOL-A's time scale times ``local_frames / T``
(``(0.6, 1.5) * 48 / 96 = (0.3, 0.75)``), so a local crop is stretched in time by the same factors ``0.6-1.5``
as a global crop, and covers 30-75% of the clip. In frequency a local crop is drawn as BYOL-A's crop is (bands
``freq_scale`` of ``F`` on the same canvas, resized back to ``F``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .audio import BYOLAViews
from .multi_crop import NUM_GLOBAL_CROPS, MultiCrops

__all__ = ["DINOAudioViews", "MultiCrops", "RandomLocalCrop"]


class RandomLocalCrop(nn.Module):
    """Random time window of log-mels ``(B, C, F, T)``, resized to ``(F, frames)``; parameters drawn per sample.

    Per sample: a window of ``w = int(u_t * T)`` frames (``u_t ~ U(time_scale)``, at least 1, at most ``T``)
    starting uniformly at random inside the clip, and ``h = int(u_f * F)`` bands (``u_f ~ U(freq_scale)``, clamped
    to the canvas) placed uniformly on a canvas of ``int(virtual_freq_scale * F)`` bands centred on the input
    (zeros outside), as :class:`RandomResizeCrop` does in frequency. The ``h x w`` box is resampled to
    ``F x frames`` with bicubic interpolation (``align_corners=True``: the box's first and last frames and bands
    land exactly on the output's), every sample in one ``grid_sample`` on the input's device.

    Args:
        frames: output length ``T_local`` in frames.
        time_scale: ``(min, max)`` window length as a fraction of ``T``, within ``(0, 1]``.
        freq_scale: ``(min, max)`` crop height as a fraction of ``F``.
        virtual_freq_scale: canvas height relative to ``F`` (``>= 1``).
    """

    def __init__(
        self,
        frames: int,
        time_scale: tuple[float, float],
        freq_scale: tuple[float, float] = (0.6, 1.5),
        virtual_freq_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not (isinstance(frames, int) and frames >= 1):
            raise ValueError(f"local_frames must be a positive integer, got {frames!r}")
        if len(time_scale) != 2 or not 0 < time_scale[0] <= time_scale[1] <= 1:
            raise ValueError(f"local_time_scale must be (min, max) with 0 < min <= max <= 1, got {time_scale}")
        if len(freq_scale) != 2 or not 0 < freq_scale[0] <= freq_scale[1]:
            raise ValueError(f"local_freq_scale must be (min, max) with 0 < min <= max, got {freq_scale}")
        if virtual_freq_scale < 1:
            raise ValueError(f"virtual_freq_scale must be >= 1, got {virtual_freq_scale}")
        self.frames = frames
        self.time_scale, self.freq_scale = tuple(time_scale), tuple(freq_scale)
        self.virtual_freq_scale = virtual_freq_scale

    def sample_boxes(self, batch: int, size: tuple[int, int], device: torch.device | str = "cpu") -> Tensor:
        """Random boxes ``(batch, 4)`` as ``(top, left, height, width)``, int64: ``top`` on the frequency canvas,
        ``left`` in the clip's frames."""
        f, t = size
        fc = int(f * self.virtual_freq_scale)
        h = (torch.empty(batch, device=device).uniform_(*self.freq_scale) * f).long().clamp(1, fc)
        w = (torch.empty(batch, device=device).uniform_(*self.time_scale) * t).long().clamp(1, t)
        top = (torch.rand(batch, device=device) * (fc - h + 1)).long().clamp_max(fc - h)
        left = (torch.rand(batch, device=device) * (t - w + 1)).long().clamp_max(t - w)
        return torch.stack([top, left, h, w], dim=1)

    def crop_resize(self, x: Tensor, boxes: Tensor) -> Tensor:
        """The ``boxes`` (see :meth:`sample_boxes`) of ``x`` ``(B, C, F, T)``, resized to ``(B, C, F, frames)``."""
        f, t = x.shape[-2:]
        off_f = (int(f * self.virtual_freq_scale) - f) // 2
        top, left, h, w = boxes.to(device=x.device, dtype=torch.float32).unbind(1)
        u = torch.arange(f, device=x.device, dtype=torch.float32) / max(f - 1, 1)
        v = torch.arange(self.frames, device=x.device, dtype=torch.float32) / max(self.frames - 1, 1)
        rows = top[:, None] + u[None] * (h[:, None] - 1) - off_f  # (B, F) input bands
        cols = left[:, None] + v[None] * (w[:, None] - 1)  # (B, frames) input frames
        gy, gx = 2 * rows / max(f - 1, 1) - 1, 2 * cols / max(t - 1, 1) - 1
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (B, F, frames, 2)
        return F.grid_sample(x, grid.to(x.dtype), mode="bicubic", padding_mode="zeros", align_corners=True)

    def forward(self, x: Tensor) -> Tensor:
        """Local crops ``(B, C, F, frames)`` of log-mels ``(B, C, F, T)``."""
        if x.shape[0] == 0:
            return x.new_empty((0, *x.shape[1:-1], self.frames))
        return self.crop_resize(x, self.sample_boxes(x.shape[0], tuple(x.shape[-2:]), x.device))


class DINOAudioViews(BYOLAViews):
    """DINO multi-crop views of a batch of waveforms ``(B, L)``: two global BYOL-A crops and ``num_local_crops``
    shorter local crops of each clip's log-mel (see the module docstring for the pipeline and the choice).

    A :class:`BYOLAViews` (same front end, pre-normalisation, mixup, random resize crop, fader and the same
    statistics machinery: ``needs_statistics``, ``statistics_moments``, ``set_statistics``, ``set_epoch``,
    ``preprocess``, ``preprocessing``), whose :meth:`forward` returns :class:`MultiCrops` instead of two views.
    Every random parameter is drawn per crop on the waveforms' device; nothing is read back from the device.

    Args:
        num_local_crops: local crops ``L`` per clip; 0 gives the global crops only.
        local_frames: frames ``T_local`` of a local crop; ``None``: ``T // 2``.
        local_time_scale: ``(min, max)`` length of a local crop's window as a fraction of ``T`` (within
            ``(0, 1]``); ``None``: ``time_scale * local_frames / T`` capped at 1 (the global crops' stretch).
        local_freq_scale: ``(min, max)`` bands of a local crop as a fraction of ``F``; ``None``: ``freq_scale``.
        **kwargs: :class:`BYOLAViews`'s arguments (``segment_seconds``, ``pre_norm``, ``norm_stats``, mixup, random
            resize crop, fader, front end); its defaults are BYOL-A v2's.

    Attributes:
        shape: ``(F, T)`` of the log-mels and of the global crops.
        local_shape: ``(F, T_local)`` of the local crops.
    """

    def __init__(
        self,
        *,
        num_local_crops: int = 4,
        local_frames: int | None = None,
        local_time_scale: tuple[float, float] | None = None,
        local_freq_scale: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(num_local_crops, int) and not isinstance(num_local_crops, bool) and num_local_crops >= 0):
            raise ValueError(f"num_local_crops must be a non-negative integer, got {num_local_crops!r}")
        super().__init__(**kwargs)
        f, t = self.shape
        frames = t // 2 if local_frames is None else local_frames
        if local_time_scale is None:
            if not (isinstance(frames, int) and frames >= 1):
                raise ValueError(f"local_frames must be a positive integer, got {frames!r}")
            local_time_scale = tuple(min(1.0, s * frames / t) for s in self.crop.time_scale)
        self.num_local_crops = num_local_crops
        self.local_crop = RandomLocalCrop(
            frames, local_time_scale, local_freq_scale or self.crop.freq_scale, self.crop.virtual_crop_scale[0]
        )
        self.local_shape = (f, frames)

    def forward(self, waveforms: Tensor, epoch: int | None = None) -> MultiCrops:
        """Post-normalised float32 crops of waveforms ``(B, segment_samples)``: :class:`MultiCrops` of global crops
        ``(2 * B, 1, F, T)`` and local crops ``(num_local_crops * B, 1, F, local_frames)``, crop-major (row
        ``i * B + b`` is crop ``i`` of clip ``b``).

        ``epoch`` as for :meth:`BYOLAViews.forward` (the running pre-normalisation); the batch is pushed into the
        mixup memory after every crop is drawn.
        """
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            x = self.pre_normalised(waveforms, epoch)
            b = x.shape[0]
            rows = x.repeat(NUM_GLOBAL_CROPS + self.num_local_crops, 1, 1, 1)  # crop-major
            if self.mixup is not None:
                rows = self.mixup(rows)
            global_crops = self.crop(rows[: NUM_GLOBAL_CROPS * b])
            local_crops = self.local_crop(rows[NUM_GLOBAL_CROPS * b :])
            if self.fader is not None:
                global_crops, local_crops = self.fader(global_crops), self.fader(local_crops)
            if self.mixup is not None:
                self.mixup.remember(x)
            return MultiCrops(*self.post_normalise(global_crops, local_crops))

    def post_normalise(self, global_crops: Tensor, local_crops: Tensor) -> tuple[Tensor, Tensor]:
        """Both sets standardised with the mean and (unbiased) std of all their values together
        (:class:`NormalizeBatch` of the flattened crops)."""
        flat = torch.cat([c.reshape(1, 1, 1, c.numel()) for c in (global_crops, local_crops)], dim=-1)
        flat = self.post_norm(flat)
        n = global_crops.numel()
        return flat[..., :n].reshape(global_crops.shape), flat[..., n:].reshape(local_crops.shape)
