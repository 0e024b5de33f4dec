"""Tabular sources and datamodules: splits, formats, training-split-only fitting, real files."""

import numpy as np
import pandas as pd
import pytest
import torch
from tabular_formats import housing_like_frame, write_tiny_csv, write_tiny_rtdl
from torch.utils.data import default_collate

from byol.data.tabular import RTDLSplitDataModule, SklearnTableDataModule, TableFileDataModule
from byol.data.tabular_preprocessing import UNKNOWN_INDEX
from byol.data.tabular_sources import random_splits, read_rtdl_split


def test_csv_datamodule_reads_types_missing_values_and_splits(tmp_path):
    path = write_tiny_csv(tmp_path, n=40)
    dm = TableFileDataModule(str(path), target="median_house_value", val_fraction=0.2, test_fraction=0.2, batch_size=4)
    pre = dm.preprocessing
    assert pre.feature_names[-1] == "ocean_proximity" and pre.num_numeric == 8 and pre.task == "regression"
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (24, 8, 8)
    all_num = torch.cat([dm.train_set.num, dm.val_set.num, dm.test_set.num])
    assert torch.isnan(all_num).sum() == 2  # the two missing total_bedrooms, kept for the [MISSING] token
    x, y = default_collate([dm.train_set[i] for i in range(4)])
    assert x["num"].shape == (4, 8) and x["num"].dtype == torch.float32
    assert x["cat"].shape == (4, 1) and x["cat"].dtype == torch.int64 and y.dtype == torch.float32


def test_random_splits_are_disjoint_deterministic_and_stratified():
    frame = pd.DataFrame({"x": np.arange(200), "y": [0] * 150 + [1] * 50})
    a = random_splits(frame, 0.2, 0.2, seed=3, stratify="y")
    b = random_splits(frame, 0.2, 0.2, seed=3, stratify="y")
    c = random_splits(frame, 0.2, 0.2, seed=4, stratify="y")
    rows = [set(s["x"]) for s in a]
    assert sum(map(len, rows)) == 200 and set.union(*rows) == set(range(200))
    assert all(x.equals(y) for x, y in zip(a, b)) and not a[0].equals(c[0])
    assert [int(s["y"].sum()) for s in a] == [30, 10, 10]


def test_preprocessing_is_fitted_on_the_training_split_only(tmp_path):
    """Validation and test rows come from other distributions and hold a category of their own: a preprocessing
    fitted on all rows would have other statistics, and would know that category."""
    rng = np.random.default_rng(0)
    split = ["train"] * 60 + ["val"] * 20 + ["test"] * 20
    frame = pd.DataFrame({
        "x": np.concatenate([rng.normal(0, 1, 60), rng.normal(50, 1, 20), rng.normal(100, 1, 20)]),
        "colour": ["red", "blue"] * 30 + ["green"] * 40,
        "y": rng.normal(size=100),
        "split": split,
    })
    path = tmp_path / "leak.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="'green'"):
        dm = TableFileDataModule(str(path), target="y", split_column="split", numeric_transform="standard",
                                 batch_size=8)
    train_x = frame["x"][:60]
    col = dm.preprocessing.numeric[0]
    assert col.mean == pytest.approx(train_x.mean()) and col.std == pytest.approx(train_x.std(ddof=0))
    assert dm.preprocessing.categorical[0].categories == ("blue", "red")
    assert dm.test_set.num.mean() > 50  # still far away: transformed with the training statistics
    assert (dm.test_set.cat == UNKNOWN_INDEX).all()
    assert dm.preprocessing.labels(frame).shape == (100,)


def test_parquet_gives_the_same_table_as_csv(tmp_path):
    frame = housing_like_frame(30)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    a = TableFileDataModule(str(tmp_path / "t.csv"), target="median_house_value", batch_size=4)
    b = TableFileDataModule(str(tmp_path / "t.parquet"), target="median_house_value", batch_size=4)
    torch.testing.assert_close(a.train_set.num, b.train_set.num, equal_nan=True)
    assert torch.equal(a.train_set.cat, b.train_set.cat)


def test_file_errors_name_the_file_and_the_column(tmp_path):
    path = write_tiny_csv(tmp_path)
    with pytest.raises(ValueError, match=r"target column 'income' not found in .*housing.csv; its columns are: long"):
        TableFileDataModule(str(path), target="income")
    with pytest.raises(FileNotFoundError, match="nope.csv not found"):
        TableFileDataModule(str(tmp_path / "nope.csv"))
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported table format"):
        TableFileDataModule(str(tmp_path / "t.xlsx"))
    with pytest.raises(ValueError, match=r"columns to drop \['id'\] not found"):
        TableFileDataModule(str(path), drop=["id"])


def test_unlabeled_table_has_minus_one_labels(tmp_path):
    dm = TableFileDataModule(str(write_tiny_csv(tmp_path)), batch_size=4)
    assert dm.preprocessing.task is None and (dm.train_set.labels == -1).all()


def test_rtdl_folder_keeps_its_split_and_column_types(tmp_path):
    root = write_tiny_rtdl(tmp_path / "tiny", sizes=(16, 8, 6))
    splits = read_rtdl_split(root)
    assert splits.numeric == ["n0", "n1", "n2", "n3", "n4"] and splits.categorical == ["c0", "c1"]
    assert splits.task == "regression" and splits.target == "target"
    dm = RTDLSplitDataModule(str(root), batch_size=4)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (16, 8, 6)
    assert dm.preprocessing.cardinalities == [5, 5]
    torch.testing.assert_close(dm.test_set.labels, torch.from_numpy(np.load(root / "y_test.npy")))


def test_rtdl_object_arrays_are_refused(tmp_path):
    root = write_tiny_rtdl(tmp_path / "tiny")
    np.save(root / "C_train.npy", np.array([["a", None]] * 16, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="C_train.npy holds Python objects and is not read"):
        read_rtdl_split(root)


def test_sklearn_breast_cancer_is_split_with_class_proportions():
    dm = SklearnTableDataModule("breast_cancer", batch_size=32)
    pre = dm.preprocessing
    assert pre.num_numeric == 30 and pre.cardinalities == [] and pre.num_classes == 2
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 569
    shares = [d.labels.float().mean().item() for d in (dm.train_set, dm.val_set, dm.test_set)]
    assert max(shares) - min(shares) < 0.02


def test_california_rtdl_split(california_rtdl):
    dm = RTDLSplitDataModule(str(california_rtdl), batch_size=512)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (13209, 3303, 4128)
    assert dm.preprocessing.num_numeric == 8 and dm.preprocessing.task == "regression"
    assert dm.preprocessing.feature_names[0] == "medium-income"
    assert 0.5 < dm.train_set.labels.mean().item() < 5  # $100k units
    assert abs(dm.train_set.num.mean().item()) < 0.05  # quantile-normal on the training split


def test_messy_housing_csv(housing_csv):
    dm = TableFileDataModule(str(housing_csv), target="median_house_value", batch_size=512)
    pre = dm.preprocessing
    assert [c.name for c in pre.categorical] == ["ocean_proximity"] and pre.cardinalities == [2 + 5]
    missing = sum(torch.isnan(d.num[:, pre.feature_names.index("total_bedrooms")]).sum().item()
                  for d in (dm.train_set, dm.val_set, dm.test_set))
    assert missing == 207
    with pytest.raises(ValueError, match="column 'total_bedrooms' .* has .* missing values"):
        TableFileDataModule(str(housing_csv), target="median_house_value", missing="error")
