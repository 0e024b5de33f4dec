"""SCARF-style corruption views of table rows: values drawn from each column of the batch, at the asked rate."""

import torch

from byol.views import TabularCorruptionViews


def _rows(b: int = 200, f_num: int = 5, f_cat: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    num = torch.randn(b, f_num, generator=g)  # distinct values: a replaced entry is visible
    cat = torch.arange(b).repeat(f_cat, 1).T % 7 + 1  # categories 1..7, never [UNKNOWN]
    return {"num": num, "cat": cat}


def test_every_value_comes_from_its_own_column_and_about_p_of_them_change():
    rows = _rows()
    torch.manual_seed(1)
    v1, v2 = TabularCorruptionViews(corruption=0.6)(rows)
    for view in (v1, v2):
        assert view["num"].shape == rows["num"].shape and view["cat"].dtype == rows["cat"].dtype
        for j in range(rows["num"].shape[1]):
            assert torch.isin(view["num"][:, j], rows["num"][:, j]).all()  # from the column's marginal
        # replaced with probability 0.6 by a uniformly drawn row, itself with probability 1/200
        changed = (view["num"] != rows["num"]).float().mean().item()
        assert abs(changed - 0.6 * (1 - 1 / 200)) < 0.05
    assert not torch.equal(v1["num"], v2["num"])  # independent draws per view


def test_no_corruption_is_the_identity_and_full_masking_unknowns_every_category():
    rows = _rows()
    v1, _ = TabularCorruptionViews(corruption=0.0)(rows)
    assert torch.equal(v1["num"], rows["num"]) and torch.equal(v1["cat"], rows["cat"])
    masked, _ = TabularCorruptionViews(corruption=0.0, mask_prob=1.0)(rows)
    assert (masked["cat"] == 0).all() and torch.equal(masked["num"], rows["num"])
    assert TabularCorruptionViews().preprocess(rows) is rows
