"""JEPA mask samplers on a patch grid, checked against boolean grids rebuilt here from the returned indices."""

import numpy as np
import pytest
import torch

from byol.views import MultiBlockMasks, TimeFrequencyMasks
from byol.views.tabular_masks import FeatureMasks


def draw(sampler, batch_size, grid, seed, device="cpu"):
    """``(sizes, masks)``: the batch's block sizes, then the masks drawn from the same seed."""
    torch.manual_seed(seed)
    sizes = sampler.sample_sizes(grid)
    torch.manual_seed(seed)
    return sizes, sampler(batch_size, grid, device)


def as_numpy(masks):
    return masks.context.numpy(), masks.targets.numpy()


def rectangle(indices, width):
    """``(top, left, h, w)`` when ``indices`` fill a rectangle of the grid exactly once each, else ``None``."""
    rows, cols = indices // width, indices % width
    top, left = rows.min(), cols.min()
    h, w = rows.max() - top + 1, cols.max() - left + 1
    return (top, left, h, w) if len(set(indices.tolist())) == len(indices) == h * w else None


def block(grid, top, left, h, w):
    out = np.zeros(grid, bool)
    out[top : top + h, left : left + w] = True
    return out.ravel()


def check_common(masks, grid, num_targets, target_size, min_keep):
    """Shapes, dtype, ranges, distinct context, rectangular targets of the drawn size, disjointness. Returns the
    per-row boolean grids ``(context (B, N), target union (B, N))``."""
    assert isinstance(masks, FeatureMasks)
    assert masks.context.dtype == masks.targets.dtype == torch.int64
    context, targets = as_numpy(masks)
    batch, n = context.shape[0], grid[0] * grid[1]
    assert targets.shape == (batch, num_targets, target_size[0] * target_size[1])
    assert context.shape[1] >= min_keep
    assert (context >= 0).all() and (context < n).all() and (targets >= 0).all() and (targets < n).all()
    assert (np.diff(context, axis=1) > 0).all()  # distinct, in row-major order
    ctx_grid, tgt_grid = np.zeros((batch, n), bool), np.zeros((batch, n), bool)
    for r in range(batch):
        ctx_grid[r, context[r]] = True
        for m in range(num_targets):
            rect = rectangle(targets[r, m], grid[1])
            assert rect is not None and rect[2:] == tuple(target_size), (r, m, targets[r, m])
            tgt_grid[r, targets[r, m]] = True
    assert not (ctx_grid & tgt_grid).any()
    return ctx_grid, tgt_grid


# ----- MultiBlockMasks -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [(14, 14), (8, 8), (6, 10), (4, 4)])
def test_multi_block_masks_are_rectangles_around_a_disjoint_context(grid):
    sampler = MultiBlockMasks()
    for seed in range(3):
        (target, (h_c, w_c)), masks = draw(sampler, 16, grid, seed)
        ctx_grid, tgt_grid = check_common(masks, grid, 4, target, min_keep=4)
        # each context lies inside a context block; rows are cut to the smallest count, so one row keeps its
        # whole block minus its targets: find it by trying every position of the block
        k_c, (rows, cols) = masks.context.shape[1], np.divmod(np.arange(grid[0] * grid[1]), grid[1])
        whole = False
        for r in range(16):
            kept = ctx_grid[r]
            assert np.ptp(rows[kept]) < h_c and np.ptp(cols[kept]) < w_c
            for top in range(grid[0] - h_c + 1):
                for left in range(grid[1] - w_c + 1):
                    full = block(grid, top, left, h_c, w_c) & ~tgt_grid[r]
                    whole |= full.sum() == k_c and (full == kept).all()
        assert whole


def test_multi_block_sizes_follow_scale_and_aspect_up_to_rounding():
    sampler, grid, n = MultiBlockMasks(), (14, 14), 196
    targets, contexts = zip(*(draw(sampler, 1, grid, seed)[0] for seed in range(200)))
    for h, w in targets:  # h = round(sqrt(a r)), w = round(sqrt(a / r)), a = scale * N: some a, r in range fit
        area_lo, area_hi = (h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)
        aspect_lo, aspect_hi = (h - 0.5) / (w + 0.5), (h + 0.5) / (w - 0.5)
        assert area_lo <= 0.2 * n and area_hi >= 0.15 * n, (h, w)
        assert aspect_lo <= 1.5 and aspect_hi >= 0.75, (h, w)
    assert {h > w for h, w in targets} == {True, False}  # aspect ratios on both sides of 1
    for h, w in contexts:  # square, 85-100 % of the grid
        assert h == w and (h - 0.5) ** 2 <= n and (h + 0.5) ** 2 >= 0.85 * n
    assert len(set(contexts)) == 2  # 13 x 13 and the whole 14 x 14 grid


def test_multi_block_masks_redraw_rows_short_of_context():
    """4 blocks of 3x3 on 6x6 leave 16 patches only where they overlap a lot: rows are redrawn until they do
    (about 10 draws for this seed)."""
    sampler = MultiBlockMasks(target_scale=(0.25, 0.25), target_aspect=(1, 1), context_scale=(1, 1), min_keep=16)
    _, masks = draw(sampler, 32, (6, 6), seed=0)
    check_common(masks, (6, 6), 4, (3, 3), min_keep=16)
    impossible = MultiBlockMasks(target_scale=(0.25, 0.25), target_aspect=(1, 1), context_scale=(1, 1), min_keep=27)
    with pytest.raises(RuntimeError, match="min_keep"):  # every block of every row on one spot: never drawn
        impossible(32, (6, 6))


# ----- TimeFrequencyMasks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [(4, 6), (5, 38), (8, 64)])
def test_time_frequency_context_is_everything_outside_the_targets(grid):
    sampler = TimeFrequencyMasks()
    for seed in range(3):
        (f, t), masks = draw(sampler, 16, grid, seed)
        ctx_grid, tgt_grid = check_common(masks, grid, 4, (f, t), min_keep=4)
        outside = (~tgt_grid).sum(axis=1)
        assert masks.context.shape[1] == outside.min()  # cut to the smallest count ...
        assert (ctx_grid == ~tgt_grid)[outside.argmin()].all()  # ... which that row keeps whole


def test_time_frequency_context_ratio_keeps_a_random_subset():
    sampler, grid = TimeFrequencyMasks(context_ratio=0.3), (5, 38)
    (f, t), masks = draw(sampler, 16, grid, seed=0)
    ctx_grid, tgt_grid = check_common(masks, grid, 4, (f, t), min_keep=4)
    assert masks.context.shape[1] == min(round(0.3 * 190), (~tgt_grid).sum(axis=1).min())
    first_k = [np.flatnonzero(~tgt_grid[r])[: masks.context.shape[1]] for r in range(16)]
    assert any((first_k[r] != masks.context[r].numpy()).any() for r in range(16))  # not the first K_c


def test_time_frequency_sizes_follow_the_scales_up_to_rounding():
    sampler, (freq, time) = TimeFrequencyMasks(freq_scale=(0.25, 0.5), time_scale=(0.1, 0.2)), (8, 64)
    sizes = [draw(sampler, 1, (freq, time), seed)[0] for seed in range(200)]
    for f, t in sizes:
        assert (f - 0.5) / freq <= 0.5 and (f + 0.5) / freq >= 0.25, f
        assert (t - 0.5) / time <= 0.2 and (t + 0.5) / time >= 0.1, t
    assert {f for f, _ in sizes} == {2, 3, 4} and min(t for _, t in sizes) <= 7 and max(t for _, t in sizes) >= 12


# ----- both --------------------------------------------------------------------------------------------------------
SAMPLERS = [(MultiBlockMasks(), (14, 14)), (TimeFrequencyMasks(), (5, 38))]


@pytest.mark.parametrize("sampler, grid", SAMPLERS, ids=["multi-block", "time-frequency"])
def test_masks_are_reproducible_and_differ_between_rows(sampler, grid):
    _, a = draw(sampler, 16, grid, seed=3)
    _, b = draw(sampler, 16, grid, seed=3)
    _, c = draw(sampler, 16, grid, seed=4)
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)
    assert a.targets.shape != c.targets.shape or not torch.equal(a.targets, c.targets)
    rows = {tuple(row.flatten().tolist()) for row in a.targets}
    assert len(rows) >= 12  # block positions are drawn per row


@pytest.mark.parametrize("sampler, grid", SAMPLERS, ids=["multi-block", "time-frequency"])
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "meta"])
def test_masks_land_on_the_requested_device_as_int64(sampler, grid, device):
    masks = sampler(4, grid, device)
    for t in (masks.context, masks.targets):
        assert t.device.type == torch.device(device).type and t.dtype == torch.int64


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_targets": 0}, "num_targets"),
        ({"target_scale": (0.2, 0.1)}, "target_scale"),
        ({"target_scale": (0.0, 0.2)}, "target_scale"),
        ({"target_scale": (0.1, 1.2)}, "target_scale"),
        ({"target_aspect": (0, 1.5)}, "target_aspect"),
        ({"target_aspect": 1.0}, "target_aspect"),
        ({"context_scale": (0.85, 1.1)}, "context_scale"),
        ({"context_aspect": (2.0, 1.0)}, "context_aspect"),
        ({"min_keep": 0}, "min_keep"),
    ],
)
def test_multi_block_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiBlockMasks(**kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_targets": 0}, "num_targets"),
        ({"freq_scale": (0.0, 1.0)}, "freq_scale"),
        ({"time_scale": (0.3, 0.2)}, "time_scale"),
        ({"time_scale": (0.3, 1.5)}, "time_scale"),
        ({"context_ratio": 0.0}, "context_ratio"),
        ({"context_ratio": 1.5}, "context_ratio"),
        ({"min_keep": 0}, "min_keep"),
    ],
)
def test_time_frequency_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TimeFrequencyMasks(**kwargs)


@pytest.mark.parametrize(
    "sampler, batch_size, grid, name",
    [
        (MultiBlockMasks(), 0, (14, 14), "batch_size"),
        (MultiBlockMasks(), 2, (0, 14), "grid"),
        (MultiBlockMasks(), 2, (14,), "grid"),
        (MultiBlockMasks(min_keep=10), 2, (3, 3), "min_keep"),  # 3x3 context block minus a 1x1 target: 8
        (TimeFrequencyMasks(), 2, (4.0, 6), "grid"),
        (TimeFrequencyMasks(freq_scale=(1, 1), time_scale=(0.9, 1.0)), 2, (4, 6), "min_keep"),
        (TimeFrequencyMasks(context_ratio=0.1), 2, (4, 6), "min_keep"),  # round(2.4) = 2 context patches
    ],
)
def test_forward_rejects_a_grid_it_cannot_mask(sampler, batch_size, grid, name):
    with pytest.raises(ValueError, match=name):
        sampler(batch_size, grid)
