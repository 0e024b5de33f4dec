"""A pretrained tabular backbone through ``byol linear-eval`` / ``byol knn-eval``, as image backbones go."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from byol.data import TableRows, TabularPreprocessing
from byol.eval.knn import knn_accuracy
from byol.eval.linear import linear_probe
from byol.eval.protocols import knn_eval, linear_eval
from byol.eval.results import read_records
from byol.export import export_backbone
from byol.models import TabularTransformer


def _table(n: int, seed: int) -> pd.DataFrame:
    """Two classes told apart by the sign of ``a + b``; a categorical column that carries no signal."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    return pd.DataFrame({"a": a, "b": b, "colour": colour, "label": np.where(a + b > 0, "yes", "no")})


@pytest.fixture
def pretrained(tmp_path):
    """An exported tabular backbone (random weights suffice: the test checks the plumbing against a direct path)."""
    train = _table(200, seed=0)
    preprocessing = TabularPreprocessing.fit(train, target="label")
    torch.manual_seed(0)
    backbone = TabularTransformer(preprocessing.num_numeric, preprocessing.cardinalities, dim=16, depth=1, heads=2,
                                  ffn_dim=32)
    export_backbone(backbone, tmp_path / "backbone", preprocessing.export_config(), method="TJEPA")
    train.to_csv(tmp_path / "train.csv", index=False)
    _table(80, seed=1).to_csv(tmp_path / "test.csv", index=False)
    return tmp_path, backbone.eval(), preprocessing


def _direct_features(backbone, preprocessing, frame):
    with torch.no_grad():
        return backbone(preprocessing.transform(frame)), preprocessing.labels(frame)


def test_linear_and_knn_eval_of_a_table_match_the_direct_computation(pretrained):
    root, backbone, preprocessing = pretrained
    trx, try_ = _direct_features(backbone, preprocessing, pd.read_csv(root / "train.csv"))
    tex, tey = _direct_features(backbone, preprocessing, pd.read_csv(root / "test.csv"))

    rows = dict(train=TableRows(root / "train.csv"), test=TableRows(root / "test.csv"))
    result = linear_eval(str(root / "backbone"), **rows, num_workers=0, weight_decays=[1e-3], device="cpu")
    expected = linear_probe(trx, try_, tex, tey, 2, (1e-3,), 0.2, 0)
    assert result["top1"] == pytest.approx(expected.top1, abs=1e-6) and result["num_test"] == 80

    knn = knn_eval(str(root / "backbone"), **rows, k=20, num_workers=0, device="cpu")
    assert knn["top1"] == pytest.approx(knn_accuracy(trx, try_, tex, tey, 2, k=20)["top1"], abs=1e-6)


def test_linear_eval_command_on_csv_files(pretrained):
    root, _, _ = pretrained
    out = subprocess.run(
        [sys.executable, "-m", "byol.cli", "linear-eval", str(root / "backbone"),
         "--train.class_path", "byol.data.TableRows", "--train.init_args.path", str(root / "train.csv"),
         "--test.class_path", "byol.data.TableRows", "--test.init_args.path", str(root / "test.csv"),
         "--num_workers", "0", "--device", "cpu"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    results = read_records(root / "backbone")[-1]["metrics"]
    assert 50.0 < results["top1"] <= 100.0  # a + b is linear in the raw features: far above chance


def test_split_column_selects_rows_and_bad_input_is_named(tmp_path, pretrained):
    root, _, preprocessing = pretrained
    frame = _table(30, seed=2).assign(split=["train"] * 20 + ["test"] * 10)
    frame.to_csv(tmp_path / "all.csv", index=False)
    assert len(TableRows(tmp_path / "all.csv", split="test")) == 10
    with pytest.raises(ValueError, match="split column 'fold'"):
        TableRows(tmp_path / "all.csv", split="test", split_column="fold")

    frame.drop(columns=["b"]).to_csv(tmp_path / "no_b.csv", index=False)
    with pytest.raises(ValueError, match=r"no_b\.csv lacks the feature columns \['b'\]"):
        TableRows(tmp_path / "no_b.csv").preprocessed(preprocessing)

    unlabeled = TabularPreprocessing.fit(_table(30, seed=3).drop(columns=["label"]))
    with pytest.raises(ValueError, match="no target"):
        TableRows(tmp_path / "all.csv").preprocessed(unlabeled)
