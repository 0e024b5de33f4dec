"""Colour jitter for batches on the device, with per-sample factors and no host-device synchronisation.

The adjustments follow torchvision's formulas for float images in ``[0, 1]`` (each result clamped to
``[0, 1]``): brightness scales the image, contrast blends it with the mean of its grayscale, saturation blends
it with its grayscale, and hue rotates the hue channel of its HSV form. Only the samples that draw the jitter are
computed (:func:`byol.views.random_apply.apply_with_probability`), and the order of the adjustments is drawn on
the host, so no value is ever read back from the device (a GPU would otherwise stall the host at every such read).
"""

from __future__ import annotations

import torch
from collections.abc import Callable

from torch import Tensor, nn

from .random_apply import apply_with_probability

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale
_LUMA = (0.2989, 0.587, 0.114)


def grayscale(x: Tensor) -> Tensor:
    """Luma ``(B, 1, H, W)`` of RGB images ``(B, 3, H, W)``; one-channel images are their own grayscale."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return r.mul(_LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)


def _per_sample(factor: Tensor) -> Tensor:
    return factor.view(-1, 1, 1, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """``factor * x``, clamped to ``[0, 1]``; ``factor`` is ``(B,)``."""
    return (_per_sample(factor) * x).clamp_(0, 1)  # in place on the fresh product: one pass less


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the per-image mean of the grayscale: ``f * x + (1 - f) * mean``, clamped."""
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    f = _per_sample(factor)
    return (f * x).add_((1 - f) * mean).clamp_(0, 1)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the grayscale image: ``f * x + (1 - f) * gray``, clamped."""
    f = _per_sample(factor)
    return (f * x).add_((1 - f) * grayscale(x)).clamp_(0, 1)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of RGB images ``(B, 3, H, W)`` by ``shift`` ``(B,)`` turns (``[-0.5, 0.5]``), keeping HSV
    saturation and value (torchvision's ``adjust_hue``: RGB -> HSV, shift, HSV -> RGB), in fewer passes.

    With value ``V = max``, chroma ``C = V - min`` and the shifted hue ``h`` in sixths of a turn (the HSV hexagon,
    reduced to ``[0, 6)``), channel ``n`` in (R, G, B) = (5, 3, 1) of the result is ``V - C ramp(h + n)``, with the
    tent ``ramp(k) = clamp(2 - |k - 2|, 0, 1)`` repeated every 6. Over ``h`` in ``[0, 6)``, ``|k - 2|`` to the
    nearest tent is ``|h - 3|`` for red, ``min(h + 1, |h - 5|)`` for green and ``min(|h - 1|, 7 - h)`` for blue,
    and ``V - C clamp(2 - d, 0, 1) = (V - 2C) + C clamp(d, 1, 2)``. Written with float masks and per-plane
    arithmetic only: on a CPU ``torch.where``, ``max(dim)`` and ``remainder`` cost several times a multiply per
    element. Grey pixels (``C = 0``) stay ``V`` whatever their hue, so their division guard's value does not
    matter; where two channels tie for the maximum, the hexagon's sectors agree, so either sector's formula holds.
    """
    r, g, b = x.unbind(1)
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    is_r = (r == value).to(x.dtype)  # red is the maximum
    is_g = (g == value).to(x.dtype).mul_(1 - is_r)  # green is, and red is not
    is_b = 1 - is_r - is_g
    # hue in sixths: (g - b) / C, 2 + (b - r) / C or 4 + (r - g) / C by the sector of the maximum, then shifted
    h = (g - b).mul_(is_r).add_((b - r).add_(chroma, alpha=2).mul_(is_g))
    h = h.add_((r - g).add_(chroma, alpha=4).mul_(is_b)).div_(chroma.clamp(min=1e-30))
    h = h.add_(6 * shift.view(-1, 1, 1))
    h = h.sub_(torch.floor(h * (1 / 6)).mul_(6))  # in [0, 6)
    base = value.sub_(chroma, alpha=2)  # V - 2C (value is not needed any more)
    distance = (
        (h - 3).abs_(),
        torch.minimum(h + 1, (h - 5).abs_()),
        torch.minimum((h - 1).abs_(), 7 - h),
    )
    out = torch.empty_like(x)
    for channel, d in enumerate(distance):
        torch.addcmul(base, chroma, d.clamp_(1, 2), out=out[:, channel])
    return out


ADJUSTMENTS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(
    x: Tensor, factors: Tensor, order: list[int], adjustments: tuple[Callable, ...] = ADJUSTMENTS
) -> Tensor:
    """Apply the adjustments numbered in ``order`` (0 brightness, 1 contrast, 2 saturation, 3 hue) to images
    ``(B, C, H, W)`` in ``[0, 1]``, with per-sample ``factors`` ``(B, 4)`` in that numbering (``adjustments``:
    the four functions, e.g. compiled)."""
    for i in order:
        x = adjustments[i](x, factors[:, i])
    return x


class RandomColorJitter(nn.Module):
    """torchvision's ``ColorJitter`` for batches, applied to each sample with probability ``p``.

    Per sample, brightness, contrast and saturation factors are uniform in ``[max(0, 1 - s), 1 + s]`` and the hue
    shift is uniform in ``[-h, h]``. The adjustments with a non-zero strength run in a random order drawn once
    per call (torchvision draws one per image; per-image orders would cost four times the work on a batch).

    Args:
        brightness, contrast, saturation, hue: the strengths ``s`` (``hue`` in turns, at most 0.5).
        p: probability that a sample is jittered.
        compile: run each adjustment through ``torch.compile`` (dynamic shapes: the number of jittered samples
            changes every call), which fuses its element-wise chain into one pass; compiled on first use, in
            each process (a minute or so on a CPU).
    """

    def __init__(
        self, brightness: float, contrast: float, saturation: float, hue: float, p: float = 1.0, compile: bool = False
    ) -> None:
        super().__init__()
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue jitter must be in [0, 0.5], got {hue}")
        if min(brightness, contrast, saturation) < 0:
            raise ValueError(f"jitter strengths must be >= 0, got {(brightness, contrast, saturation)}")
        self.strengths = (brightness, contrast, saturation, hue)
        # factor ranges as (non-persistent) buffers: they move with the module, so no call copies them over
        self.register_buffer("low", torch.tensor([max(0.0, 1 - s) for s in self.strengths[:3]] + [-hue]), False)
        self.register_buffer("high", torch.tensor([1 + s for s in self.strengths[:3]] + [hue]), False)
        self.p, self.compile = p, compile
        self._compiled: tuple[Callable, ...] | None = None

    def __getstate__(self) -> dict:
        """Pickled (e.g. to DDP's spawned processes) without the compiled functions, which each process makes."""
        return {**self.__dict__, "_compiled": None}

    @property
    def adjustments(self) -> tuple[Callable, ...]:
        """The four adjustments, compiled on first use when ``compile`` is set."""
        if not self.compile:
            return ADJUSTMENTS
        if self._compiled is None:
            self._compiled = tuple(torch.compile(f, dynamic=True) for f in ADJUSTMENTS)
        return self._compiled

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in ``[0, 1]``, each jittered with probability ``p`` (only those are computed);
        saturation and hue need ``C = 3``."""
        return apply_with_probability(x, self.p, self.jitter)

    def jitter(self, x: Tensor) -> Tensor:
        """Every sample of ``(n, C, H, W)`` jittered with its own factors, the adjustments in one random order."""
        u = torch.rand(x.shape[0], 4, device=x.device, dtype=x.dtype)
        factors = (self.low + (self.high - self.low) * u).to(x.dtype)
        active = [i for i in range(4) if self.strengths[i] > 0]
        order = [active[i] for i in torch.randperm(len(active)).tolist()]  # host RNG: no device read
        return color_jitter(x, factors, order, self.adjustments)
