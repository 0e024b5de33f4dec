"""JEPA's masks on a patch grid: I-JEPA's multi-block masks (images) and time-frequency blocks (log-mel patches).

Indices are positions in the row-major patch grid ``(H_p, W_p)``, ``row * W_p + col``: the order of a ViT's patch
tokens (:meth:`byol.models.timm_backbone.TimmBackbone.tokens`), and for a log-mel spectrogram fed as a
``(B, 1, n_mels, frames)`` image, ``(F_p, T_p)`` with frequency along the rows and time along the columns. The
masks come in T-JEPA's container, :class:`~byol.views.tabular_masks.FeatureMasks` (a "feature" of an image or a
spectrogram is one of its patches), so one JEPA method consumes the masks of any modality: ``context (B, K_c)`` and
``targets (B, M, K_t)``.

**Drawn on the host.** The block sizes fix the tensor shapes and the context's size is the smallest over the
batch, so some values must be known to Python; drawing on the device would make the host wait for it. Everything
is therefore drawn with torch's global *CPU* generator (which the core seeds per batch, so a resumed run draws the
same masks), built from CPU tensors with ops that never read a value back, and only the final index tensors go to
the device, without waiting (I-JEPA does the same in its data loader's collator). The few values Python needs
(block sizes, "does every row have enough context", the batch's context size) are read with :func:`_host`, which
only accepts CPU tensors.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
from torch import Tensor, nn

from .tabular_masks import FeatureMasks

__all__ = ["MultiBlockMasks", "TimeFrequencyMasks"]

MAX_DRAWS = 100
"""Redraws of the rows whose context keeps fewer than ``min_keep`` patches before a sampler gives up."""

Size = tuple[int, int]


class MultiBlockMasks(nn.Module):
    """I-JEPA's multi-block masks (Assran et al. 2023, Sec. 3; the reference's ``src/masks/multiblock.py``).

    Per batch, the height and width of the ``M`` target blocks and of the context block are drawn once (so every
    row has the same ``K_t``); per row, each block gets its own uniformly random position inside the grid. The
    context is its block minus every target block of the row; a row whose context keeps fewer than ``min_keep``
    patches is redrawn (targets and context) until it keeps enough. Rows keep different numbers of context
    patches, so every row is cut down to the batch's smallest count ``K_c``, keeping a **uniformly random subset**
    of its context patches (returned in row-major order).

    A block of scale ``s`` and aspect ratio ``r`` (height / width) on an ``H_p x W_p`` grid of ``N`` patches is
    ``round(sqrt(s N r))`` patches high and ``round(sqrt(s N / r))`` wide, clipped to the grid.

    NOTE: departures from the reference implementation, each on purpose:

    - Scale and aspect ratio are drawn independently, as the paper describes; the reference uses one uniform
      number for both, so its large blocks are always its tallest ones.
    - A block may span the whole grid and may touch its last row and column (block position uniform in
      ``[0, H_p - h]``); the reference keeps blocks strictly smaller than the grid and never places them on
      its last possible row or column, so with the default context scale its context block always sits in the
      top-left corner.
    - ``min_keep`` is a minimum (``K_c >= min_keep``); the reference requires more than ``min_keep``.
    - A row that cannot keep ``min_keep`` context patches is redrawn whole, so the context stays disjoint from
      every target; the reference eventually lets the context overlap the targets instead.
    - The cut to ``K_c`` keeps a random subset, not the first ``K_c`` patches in row-major order as the
      reference does: that would always drop the bottom of the larger contexts, biasing the context toward
      the top of the image (the low mel bands of a spectrogram).

    Args:
        num_targets: ``M``, target blocks per row (paper: 4).
        target_scale: ``(min, max)`` share of the grid per target block (paper: 0.15-0.2).
        target_aspect: ``(min, max)`` height / width of the target blocks (paper: 0.75-1.5).
        context_scale: ``(min, max)`` share of the grid of the context block before the targets are removed
            (paper: 0.85-1.0).
        context_aspect: ``(min, max)`` height / width of the context block (paper: 1.0, a square).
        min_keep: least number of context patches a row keeps (reference: 4).
    """

    def __init__(
        self,
        num_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        context_aspect: tuple[float, float] = (1.0, 1.0),
        min_keep: int = 4,
    ) -> None:
        super().__init__()
        self.num_targets = _check_count("num_targets", num_targets)
        self.target_scale = _check_range("target_scale", target_scale, upper=1.0)
        self.target_aspect = _check_range("target_aspect", target_aspect)
        self.context_scale = _check_range("context_scale", context_scale, upper=1.0)
        self.context_aspect = _check_range("context_aspect", context_aspect)
        self.min_keep = _check_count("min_keep", min_keep)

    def sample_sizes(self, grid: tuple[int, int]) -> tuple[Size, Size]:
        """``((h_t, w_t), (h_c, w_c))``, the target and context block sizes of one batch (CPU global RNG)."""
        grid = _check_grid(grid)
        scale_t, aspect_t, scale_c, aspect_c = _uniform(
            [self.target_scale, self.target_aspect, self.context_scale, self.context_aspect]
        )
        return block_size(scale_t, aspect_t, grid), block_size(scale_c, aspect_c, grid)

    def forward(self, batch_size: int, grid: tuple[int, int], device: torch.device | str = "cpu") -> FeatureMasks:
        """Masks for ``batch_size`` rows of an ``(H_p, W_p)`` patch grid, on ``device``.

        Returns:
            ``context (B, K_c)`` and ``targets (B, M, K_t)`` int64 patch indices, ``K_t = h_t * w_t``.
        """
        batch_size, grid = _check_count("batch_size", batch_size), _check_grid(grid)
        self._check_feasible(grid)
        target, context = self.sample_sizes(grid)
        return _sample(batch_size, grid, self.num_targets, target, context, self.min_keep, None, device)

    def _check_feasible(self, grid: Size) -> None:
        """Raise unless every size the ranges allow leaves a placement with ``min_keep`` context patches.

        Sizes grow with the scale and each side with (or against) the aspect ratio, so the largest target
        block is at most ``h(max scale, max aspect) x w(max scale, min aspect)`` and the smallest context block
        at least ``h(min scale, min aspect) x w(min scale, max aspect)``; with every target block stacked on the
        same spot the context keeps its block minus one target block.
        """
        (s_t, r_t), (s_c, r_c) = (self.target_scale, self.target_aspect), (self.context_scale, self.context_aspect)
        h_t, w_t = block_size(s_t[1], r_t[1], grid)[0], block_size(s_t[1], r_t[0], grid)[1]
        h_c, w_c = block_size(s_c[0], r_c[0], grid)[0], block_size(s_c[0], r_c[1], grid)[1]
        kept = h_c * w_c - min(h_t, h_c) * min(w_t, w_c)
        if kept < self.min_keep:
            raise ValueError(
                f"grid {grid} is too small for min_keep={self.min_keep}: a {h_c}x{w_c} context block minus a "
                f"{h_t}x{w_t} target block keeps {kept} patches; lower min_keep or target_scale, or raise "
                "context_scale"
            )

    def extra_repr(self) -> str:
        return (
            f"num_targets={self.num_targets}, target_scale={self.target_scale}, target_aspect={self.target_aspect}, "
            f"context_scale={self.context_scale}, context_aspect={self.context_aspect}, min_keep={self.min_keep}"
        )


class TimeFrequencyMasks(nn.Module):
    """Time-frequency target blocks on a log-mel patch grid ``(F_p, T_p)``, for an audio JEPA.

    Per batch, one block extent is drawn for all targets: ``f = round(u F_p)`` frequency patches with
    ``u ~ U(freq_scale)`` and ``t = round(v T_p)`` time patches with ``v ~ U(time_scale)`` (so ``K_t = f t``, and a
    longer clip, with more time patches, gets proportionally longer blocks). Per row, each of the ``M`` blocks
    gets its own uniformly random position; the context is every patch outside the row's targets, redrawn (the
    whole row) while it keeps fewer than ``min_keep`` patches, then cut to the batch's smallest count, and to at
    most ``round(context_ratio * F_p * T_p)`` patches when ``context_ratio`` is set, keeping a uniformly random
    subset (in row-major order), as :class:`MultiBlockMasks` does.

    Defaults: ``M = 4`` blocks of on average ``0.75 x 0.225 ~= 0.17`` of the grid each, I-JEPA's target count and
    scale (0.15-0.2), so about half the patches are targets, as with I-JEPA's blocks. The blocks are shaped
    for a spectrogram rather than drawn square-ish: they span half to all of the frequency patches and
    15-30 % of the time patches. Local correlation along both axes makes a small square block easy to fill in
    from its neighbours, which is why A-JEPA (Fei et al. 2023, arXiv:2311.15830) moves from I-JEPA's random
    blocks toward time-frequency aware masks during training (and reports that this curriculum beats random
    blocks alone); a block covering most of the band over a short stretch of time has to be predicted from the
    other times, the frame structure audio events carry. With ``context_ratio=0.3`` the context keeps 30 % of the
    patches, the visible share of M2D (Niizumi et al. 2023; its released audio models use masking ratios 0.6
    and 0.7: ``m2d_vit_base-80x608p16x16-*-mr6/mr7``); the default keeps every non-target patch, as I-JEPA's
    context does within its block.

    NOTE: A-JEPA's own time-frequency phase is reported with 3 target blocks of 5-7.5 % of the grid on
    AudioSet's 8 x 64 patches (128 mels, 1024 frames); what we could read of it does not fix their shape, and on
    this framework's small grids (4 x 6 for 64 mels x 96 frames) 5 % is about one patch, so the defaults follow
    I-JEPA's target area instead. ``num_targets=3, freq_scale=(0.25, 0.5), time_scale=(0.15, 0.2)`` gives
    blocks of 4-10 % of an 8 x 64 grid, about A-JEPA's.

    Args:
        num_targets: ``M``, target blocks per row.
        freq_scale: ``(min, max)`` share of the frequency patches ``F_p`` a block spans.
        time_scale: ``(min, max)`` share of the time patches ``T_p`` a block spans.
        context_ratio: at most this share of the grid is context; ``None``: every patch outside the targets
            (down to the batch's smallest count).
        min_keep: least number of context patches a row keeps.
    """

    def __init__(
        self,
        num_targets: int = 4,
        freq_scale: tuple[float, float] = (0.5, 1.0),
        time_scale: tuple[float, float] = (0.15, 0.3),
        context_ratio: float | None = None,
        min_keep: int = 4,
    ) -> None:
        super().__init__()
        self.num_targets = _check_count("num_targets", num_targets)
        self.freq_scale = _check_range("freq_scale", freq_scale, upper=1.0)
        self.time_scale = _check_range("time_scale", time_scale, upper=1.0)
        if context_ratio is not None and not 0 < context_ratio <= 1:
            raise ValueError(f"context_ratio must be in (0, 1] or None, got {context_ratio}")
        self.context_ratio = context_ratio
        self.min_keep = _check_count("min_keep", min_keep)

    def sample_sizes(self, grid: tuple[int, int]) -> Size:
        """``(f, t)``, the frequency and time extent (in patches) of the target blocks of one batch (CPU RNG)."""
        (freq, time) = _check_grid(grid)
        u, v = _uniform([self.freq_scale, self.time_scale])
        return _clip(_round(u * freq), freq), _clip(_round(v * time), time)

    def forward(self, batch_size: int, grid: tuple[int, int], device: torch.device | str = "cpu") -> FeatureMasks:
        """Masks for ``batch_size`` rows of an ``(F_p, T_p)`` log-mel patch grid, on ``device``.

        Returns:
            ``context (B, K_c)`` and ``targets (B, M, K_t)`` int64 patch indices (``f * T_p + t``), ``K_t = f t``.
        """
        batch_size, grid = _check_count("batch_size", batch_size), _check_grid(grid)
        cap = self._context_cap(grid)
        target = self.sample_sizes(grid)
        return _sample(batch_size, grid, self.num_targets, target, None, self.min_keep, cap, device)

    def _context_cap(self, grid: Size) -> int | None:
        """``round(context_ratio * N)``; raise unless the largest blocks leave room for ``min_keep`` patches."""
        (freq, time), n = grid, grid[0] * grid[1]
        f, t = _clip(_round(self.freq_scale[1] * freq), freq), _clip(_round(self.time_scale[1] * time), time)
        cap = None if self.context_ratio is None else _round(self.context_ratio * n)
        if n - f * t < self.min_keep or (cap is not None and cap < self.min_keep):
            raise ValueError(
                f"grid {grid} is too small for min_keep={self.min_keep}: a {f}x{t} target block leaves "
                f"{n - f * t} patches" + ("" if cap is None else f" and context_ratio keeps {cap}")
                + "; lower min_keep, freq_scale or time_scale"
            )
        return cap

    def extra_repr(self) -> str:
        return (
            f"num_targets={self.num_targets}, freq_scale={self.freq_scale}, time_scale={self.time_scale}, "
            f"context_ratio={self.context_ratio}, min_keep={self.min_keep}"
        )


def block_size(scale: float, aspect: float, grid: Size) -> Size:
    """``(h, w)`` of a block covering ``scale`` of the grid with height / width ``aspect``, clipped to the grid."""
    area = scale * grid[0] * grid[1]
    return _clip(_round(math.sqrt(area * aspect)), grid[0]), _clip(_round(math.sqrt(area / aspect)), grid[1])


def _sample(
    batch_size: int,
    grid: Size,
    num_targets: int,
    target: Size,
    context: Size | None,
    min_keep: int,
    cap: int | None,
    device: torch.device | str,
) -> FeatureMasks:
    """Place the blocks per row (CPU), redraw rows short of context, cut the context, move to ``device``.

    ``context``: the context block's size, or ``None`` for the whole grid.
    """

    def draw() -> Tensor:  # (B, M + 1, 2) block corners (top, left): the targets, then the context block
        corners = [_corners(batch_size, num_targets, target, grid)]
        corners.append(_corners(batch_size, 1, context if context is not None else grid, grid))
        return torch.cat(corners, dim=1)

    def context_of(corners: Tensor) -> Tensor:  # (B, N) bool
        targets = _cover(corners[:, :num_targets], target, grid).any(dim=1)
        region = _cover(corners[:, num_targets:], context if context is not None else grid, grid)[:, 0]
        return region & ~targets

    corners = draw()
    kept = context_of(corners)
    for attempt in range(MAX_DRAWS + 1):
        enough = kept.sum(dim=1) >= min_keep
        if _host(enough).all():
            break
        if attempt == MAX_DRAWS:
            raise RuntimeError(
                f"after {MAX_DRAWS} draws some rows still keep fewer than min_keep={min_keep} context patches "
                f"(grid {grid}, target blocks {target}, context block {context or grid}); lower min_keep or the "
                "target sizes"
            )
        corners = torch.where(enough[:, None, None], corners, draw())
        kept = context_of(corners)
    k_c = int(_host(kept.sum(dim=1)).min())
    if cap is not None:
        k_c = min(k_c, cap)
    # a uniformly random k_c-subset of each row's context: the k_c largest of uniform scores, -1 outside it
    scores = torch.where(kept, torch.rand(kept.shape), -1.0)
    context_idx = scores.topk(k_c, dim=1).indices.sort(dim=1).values
    target_idx = _indices(corners[:, :num_targets], target, grid[1])
    return FeatureMasks(_to_device(context_idx, device), _to_device(target_idx, device))


def _corners(batch_size: int, count: int, size: Size, grid: Size) -> Tensor:
    """``(B, count, 2)`` uniformly random (top, left) corners of ``size`` blocks inside the grid."""
    top = torch.randint(0, grid[0] - size[0] + 1, (batch_size, count, 1))
    left = torch.randint(0, grid[1] - size[1] + 1, (batch_size, count, 1))
    return torch.cat([top, left], dim=2)


def _cover(corners: Tensor, size: Size, grid: Size) -> Tensor:
    """``(B, count, N)`` bool: the patches of each ``size`` block at ``corners`` ``(B, count, 2)``."""
    top, left = corners[..., :1], corners[..., 1:]
    rows, cols = torch.arange(grid[0]), torch.arange(grid[1])
    in_rows = (rows >= top) & (rows < top + size[0])  # (B, count, H)
    in_cols = (cols >= left) & (cols < left + size[1])  # (B, count, W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).flatten(-2)


def _indices(corners: Tensor, size: Size, width: int) -> Tensor:
    """``(B, count, h * w)`` int64 row-major indices of each ``size`` block at ``corners`` ``(B, count, 2)``."""
    rows = corners[..., 0, None, None] + torch.arange(size[0])[:, None]  # (B, count, h, 1)
    cols = corners[..., 1, None, None] + torch.arange(size[1])  # (B, count, 1, w)
    return (rows * width + cols).flatten(-2)


def _to_device(indices: Tensor, device: torch.device | str) -> Tensor:
    """Copy host indices to ``device`` without making the host wait: a copy from pageable memory may wait for
    the device's queue, so on CUDA the indices are pinned first (torch's caching host allocator, reused)."""
    device = torch.device(device)
    if device.type == "cpu":
        return indices
    if device.type == "cuda":
        indices = indices.pin_memory()
    return indices.to(device, non_blocking=True)


def _host(tensor: Tensor) -> np.ndarray:
    """The values of a CPU tensor, for the decisions made on the host. ``Tensor.numpy()`` refuses a device
    tensor, so this can never wait for an accelerator (and dispatches no ATen op that reads a value)."""
    return tensor.numpy()


def _uniform(ranges: list[tuple[float, float]]) -> list[float]:
    """One uniform draw in each ``(min, max)`` range, from torch's global CPU generator."""
    u = _host(torch.rand(len(ranges), dtype=torch.float64))
    return [lo + float(x) * (hi - lo) for x, (lo, hi) in zip(u, ranges)]


def _round(x: float) -> int:
    """Round half up (Python's ``round`` rounds half to even)."""
    return math.floor(x + 0.5)


def _clip(n: int, upper: int) -> int:
    return min(max(n, 1), upper)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_range(name: str, value: tuple[float, float], upper: float | None = None) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}") from None
    if not (0 < lo <= hi and (upper is None or hi <= upper)):
        bound = "" if upper is None else f" <= {upper}"
        raise ValueError(f"{name} must satisfy 0 < min <= max{bound}, got {tuple(value)}")
    return lo, hi


def _check_grid(grid: tuple[int, int]) -> Size:
    try:
        rows, cols = (operator.index(g) for g in grid)
    except (TypeError, ValueError):
        rows = cols = 0
    if rows < 1 or cols < 1 or any(isinstance(g, bool) for g in grid):
        raise ValueError(f"grid must be two ints >= 1 (rows, columns of patches), got {grid!r}")
    return rows, cols
