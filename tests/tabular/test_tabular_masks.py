"""T-JEPA masks: disjoint, in range, distinct, sized by the shares, reproducible from the global seed."""

import pytest
import torch

from byol.views.tabular_masks import TabularMasks


@pytest.mark.parametrize("num_features", [2, 8, 30])
def test_context_and_targets_are_disjoint_distinct_and_feature_indices(num_features):
    masks = TabularMasks(context_share=(0.15, 0.5), target_share=(0.15, 0.6), num_targets=4)
    torch.manual_seed(0)
    for _ in range(20):
        m = masks(16, num_features)
        b, k_c = m.context.shape
        assert b == 16 and m.targets.shape[:2] == (16, 4)
        assert m.context.dtype == m.targets.dtype == torch.int64
        for idx in (m.context, m.targets):
            assert idx.min() >= 0 and idx.max() < num_features  # features only: [REG] tokens are not indices here
        for row in range(16):
            context = set(m.context[row].tolist())
            assert len(context) == k_c
            for target in m.targets[row]:
                assert len(set(target.tolist())) == len(target)
                assert context.isdisjoint(target.tolist())


def test_sizes_follow_the_shares_and_leave_room_for_the_target():
    masks = TabularMasks(context_share=(0.2, 0.4), target_share=(0.1, 0.5), num_targets=2)
    torch.manual_seed(1)
    sizes = {masks.sample_sizes(20) for _ in range(300)}
    contexts, targets = {c for c, _ in sizes}, {t for _, t in sizes}
    assert contexts == set(range(4, 9)) and targets == set(range(2, 11))
    assert all(c + t <= 20 for c, t in sizes)


def test_context_differs_between_rows_of_a_batch():
    torch.manual_seed(0)
    m = TabularMasks()(64, 10)
    assert len({tuple(sorted(r)) for r in m.context.tolist()}) > 1


def test_masks_are_a_function_of_the_global_seed():
    masks = TabularMasks()
    torch.manual_seed(7)
    a = masks(8, 12)
    torch.manual_seed(7)
    b = masks(8, 12)
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)


def test_masks_are_made_on_the_requested_device():
    m = TabularMasks()(4, 6, device="meta")
    assert m.context.device.type == "meta" and m.targets.device.type == "meta"


def test_too_few_features_is_a_clear_error():
    with pytest.raises(ValueError, match="1 features cannot hold a context of at least 1 and a disjoint target"):
        TabularMasks()(4, 1)
    with pytest.raises(ValueError, match="context_share must satisfy"):
        TabularMasks(context_share=(0.5, 0.2))
