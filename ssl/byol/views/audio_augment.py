"""BYOL-A augmentations of log-mel spectrograms, batched on the device with per-sample random parameters.

Each module takes pre-normalised log-mels ``(B, 1, F, T)`` and draws its parameters from torch's global RNG on
the input's device (which the method seeds per batch). References: Niizumi et al. 2021, "BYOL for Audio:
Self-Supervised Learning for General-Purpose Audio Representation", IJCNN (arXiv:2103.06695): mixup and random
resize crop; Niizumi et al. 2023, "BYOL for Audio: Exploring Pre-Trained General-Purpose Audio Representations",
IEEE/ACM TASLP (arXiv:2204.07402): random linear fader.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_EPS = float(torch.finfo(torch.float32).eps)


def log_mixup_exp(x: Tensor, background: Tensor, ratio: Tensor) -> Tensor:
    """``log((1 - ratio) * exp(x) + ratio * exp(background) + eps)``: mixup of log-scale inputs in linear scale.

    Args:
        x, background: log-mels of the same shape ``(B, ...)``.
        ratio: mixing ratios ``(B,)`` in ``[0, 1]``, one per sample (or a scalar).
    """
    lam = ratio.reshape(-1, *([1] * (x.ndim - 1))) if ratio.ndim else ratio
    return torch.log((1 - lam) * x.exp() + lam * background.exp() + _EPS)


class MixupBYOLA(nn.Module):
    """Mixup with past inputs as background sound (Niizumi et al. 2021, "Mixup for foreground acoustic event").

    Each sample ``x`` is mixed with a background ``z`` drawn uniformly from a FIFO memory bank of past inputs,
    in the linear domain: ``log((1 - l) exp(x) + l exp(z))`` (:func:`log_mixup_exp`) with ``l ~ U(0, ratio)``
    drawn per sample. While the bank is empty (the first batch) the inputs pass unchanged, as in the paper.
    The paper's ratio is 0.4 with 2,048 entries (v1) and 0.2 with 512 entries (v2 code).

    :meth:`forward` mixes without changing the bank; :meth:`remember` pushes a batch into it. BYOL-A's pipeline
    mixes both views first and then remembers the batch once.

    NOTE: the reference code pushes every input once per view, so its bank holds each past input twice and the
    second view may be mixed with its own input; remembering once after both views keeps ``memory_size``
    distinct past inputs and mixes only with the past.

    The bank ``(memory_size, F, T)`` and the number of inputs pushed so far are persistent buffers: checkpoints
    carry them and a resumed run mixes exactly as an uninterrupted one. The count is also kept on the host (read
    from the buffer once, when a state dict is loaded), so mixing never reads the device.

    Args:
        ratio: maximum mixing ratio ``alpha``.
        memory_size: entries of the FIFO bank.
        shape: ``(F, T)`` of the log-mels (64 x 96 in the papers).
    """

    def __init__(self, ratio: float = 0.2, memory_size: int = 512, shape: tuple[int, int] = (64, 96)) -> None:
        super().__init__()
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {ratio}")
        if memory_size < 1:
            raise ValueError(f"memory_size must be positive, got {memory_size}")
        self.ratio, self.memory_size, self.shape = ratio, memory_size, tuple(shape)
        self.register_buffer("bank", torch.zeros(memory_size, *self.shape))
        self.register_buffer("pushed", torch.zeros((), dtype=torch.long))
        self._pushed = 0  # the host's copy of `pushed`
        self.register_load_state_dict_post_hook(MixupBYOLA._count_loaded)

    @staticmethod
    def _count_loaded(module: MixupBYOLA, incompatible_keys: Any) -> None:
        module._pushed = int(module.pushed)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != self.shape:
            raise ValueError(f"expected log-mels (B, 1, {self.shape[0]}, {self.shape[1]}), got {tuple(x.shape)}: "
                             "the mixup shape must match n_mels and the frames of a segment")

    @property
    def filled(self) -> int:
        """Entries of the bank in use."""
        return min(self._pushed, self.memory_size)

    def forward(self, x: Tensor) -> Tensor:
        """Mixed log-mels ``(B, 1, F, T)``; the input itself while the bank is empty."""
        self._check(x)
        filled = self.filled
        if filled == 0:
            return x
        index = torch.randint(0, filled, (x.shape[0],), device=x.device)
        ratio = self.ratio * torch.rand(x.shape[0], device=x.device)
        return log_mixup_exp(x, self.bank[index].unsqueeze(1).to(x.dtype), ratio)

    @torch.no_grad()
    def remember(self, x: Tensor) -> None:
        """Push a batch ``(B, 1, F, T)`` into the FIFO bank (the oldest entries are overwritten)."""
        self._check(x)
        x = x[-self.memory_size :, 0]
        slots = (self.pushed + torch.arange(x.shape[0], device=x.device)) % self.memory_size
        self.bank[slots] = x.to(self.bank.dtype)
        self.pushed += x.shape[0]
        self._pushed += x.shape[0]


class RandomResizeCrop(nn.Module):
    """Random resize crop of a virtual canvas (Niizumi et al. 2021, "Random resize cropping").

    The log-mel ``(F, T)`` sits in the centre of a zero canvas of ``virtual_crop_scale * (F, T)`` (paper:
    ``1.0 x F, 1.5 x T``). Per sample, a crop of ``h = int(u_f * F)`` bands and ``w = int(u_t * T)`` frames
    (``u_f ~ U(freq_scale)``, ``u_t ~ U(time_scale)``, paper: both ``[0.6, 1.5]``; clamped to the canvas) is
    placed uniformly at random on the canvas and resized back to ``F x T`` with bicubic interpolation
    (``align_corners=True``): zoom and shift in time and frequency in one op.

    All crops are resampled together with ``grid_sample``. NOTE: the reference crops, then resizes the crop
    alone, so its bicubic taps beyond the crop's edge repeat the edge; here they read the canvas there. The two
    differ only within two pixels of the crop's border, in proportion to the local slope.

    Args:
        virtual_crop_scale: canvas size ``(F ratio, T ratio)`` relative to the input (both ``>= 1``).
        freq_scale, time_scale: ``(min, max)`` crop size relative to the input.
    """

    def __init__(
        self,
        virtual_crop_scale: tuple[float, float] = (1.0, 1.5),
        freq_scale: tuple[float, float] = (0.6, 1.5),
        time_scale: tuple[float, float] = (0.6, 1.5),
    ) -> None:
        super().__init__()
        if min(virtual_crop_scale) < 1.0:
            raise ValueError(f"virtual_crop_scale must be >= 1 on both axes, got {virtual_crop_scale}")
        for name, (lo, hi) in (("freq_scale", freq_scale), ("time_scale", time_scale)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {(lo, hi)}")
        self.virtual_crop_scale = tuple(virtual_crop_scale)
        self.freq_scale, self.time_scale = tuple(freq_scale), tuple(time_scale)

    def canvas(self, size: tuple[int, int]) -> tuple[int, int]:
        """Canvas ``(F_c, T_c)`` for inputs of ``size = (F, T)``."""
        return int(size[0] * self.virtual_crop_scale[0]), int(size[1] * self.virtual_crop_scale[1])

    def sample_boxes(self, batch: int, size: tuple[int, int], device: torch.device | str = "cpu") -> Tensor:
        """Random crops ``(batch, 4)`` as ``(top, left, height, width)`` on the canvas, int64."""
        (f, t), (fc, tc) = size, self.canvas(size)

        def extent(scale: tuple[float, float], n: int, limit: int) -> Tensor:
            u = torch.empty(batch, device=device).uniform_(*scale)
            return (u * n).long().clamp(1, limit)

        h, w = extent(self.freq_scale, f, fc), extent(self.time_scale, t, tc)
        top = (torch.rand(batch, device=device) * (fc - h + 1)).long().clamp_max(fc - h)
        left = (torch.rand(batch, device=device) * (tc - w + 1)).long().clamp_max(tc - w)
        return torch.stack([top, left, h, w], dim=1)

    def crop_resize(self, x: Tensor, boxes: Tensor) -> Tensor:
        """Crop ``boxes`` (see :meth:`sample_boxes`) of the canvas around ``x (B, C, F, T)``, resized to ``F x T``."""
        b, _, f, t = x.shape
        fc, tc = self.canvas((f, t))
        off_f, off_t = (fc - f) // 2, (tc - t) // 2
        boxes = boxes.to(device=x.device, dtype=torch.float32)
        top, left, h, w = boxes.unbind(1)
        # output pixel u of the resized crop samples the crop at u * (h - 1) / (F - 1) (align_corners=True)
        u = torch.arange(f, device=x.device, dtype=torch.float32) / max(f - 1, 1)
        v = torch.arange(t, device=x.device, dtype=torch.float32) / max(t - 1, 1)
        rows = top[:, None] + u[None] * (h[:, None] - 1) - off_f  # (B, F) input row coordinates
        cols = left[:, None] + v[None] * (w[:, None] - 1) - off_t  # (B, T) input column coordinates
        gy = 2 * rows / max(f - 1, 1) - 1
        gx = 2 * cols / max(t - 1, 1) - 1
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (B, F, T, 2)
        return F.grid_sample(x, grid.to(x.dtype), mode="bicubic", padding_mode="zeros", align_corners=True)

    def forward(self, x: Tensor) -> Tensor:
        """Randomly cropped and resized log-mels, same shape as ``x (B, C, F, T)``."""
        return self.crop_resize(x, self.sample_boxes(x.shape[0], tuple(x.shape[-2:]), x.device))


class RandomLinearFader(nn.Module):
    """Random linear fader (Niizumi et al. 2023, "Random Linear Fader"): a linear gain ramp over time.

    Adds to each log-mel the line from ``head`` at the first frame to ``tail`` at the last, the same for every
    frequency (a fade in or out, in log scale), with ``head, tail ~ gain * U(-1, 1)`` drawn per sample.

    Args:
        gain: maximum absolute change at either end (paper: 1.0).
    """

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        if gain < 0:
            raise ValueError(f"gain must be non-negative, got {gain}")
        self.gain = gain

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, F, T)`` plus a per-sample linear ramp over ``T``."""
        b, t = x.shape[0], x.shape[-1]
        ends = self.gain * (2 * torch.rand(b, 2, device=x.device, dtype=x.dtype) - 1)  # (B, 2): head, tail
        steps = torch.linspace(0, 1, t, device=x.device, dtype=x.dtype)
        ramp = ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * steps  # (B, T)
        return x + ramp[:, None, None, :]
