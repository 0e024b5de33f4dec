"""Writers of tiny tables in their native on-disk formats, for tests (and tests/test_configs.py).

``TABLE_WRITERS`` maps a datamodule ``class_path`` of a recipe to its writer and
the init argument that takes the written path; :func:`tabular_overrides` turns
a recipe's ``data`` section into the CLI overrides that point it at a tiny copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HOUSING_COLUMNS = [
    "longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population", "households",
    "median_income", "median_house_value", "ocean_proximity",
]
OCEAN = ["<1H OCEAN", "INLAND", "NEAR BAY", "NEAR OCEAN"]


def housing_like_frame(n: int = 24, seed: int = 0) -> pd.DataFrame:
    """Rows with the header of handson-ml2's ``housing.csv``: 8 numeric features, the target
    ``median_house_value``, the categorical ``ocean_proximity``, and two missing ``total_bedrooms``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "longitude": rng.uniform(-124, -114, n).round(2),
        "latitude": rng.uniform(32, 42, n).round(2),
        "housing_median_age": rng.integers(1, 52, n).astype(float),
        "total_rooms": rng.integers(10, 8000, n).astype(float),
        "total_bedrooms": rng.integers(2, 1500, n).astype(float),
        "population": rng.integers(3, 5000, n).astype(float),
        "households": rng.integers(2, 1500, n).astype(float),
        "median_income": rng.uniform(0.5, 15, n).round(4),
        "median_house_value": rng.integers(15000, 500001, n).astype(float),
        "ocean_proximity": [OCEAN[i % len(OCEAN)] for i in range(n)],
    })
    frame.loc[[3, 11], "total_bedrooms"] = np.nan
    return frame[HOUSING_COLUMNS]


def write_tiny_csv(root: Path, n: int = 24, seed: int = 0) -> Path:
    """``root/housing.csv``: :func:`housing_like_frame` as CSV (missing values as empty fields)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "housing.csv"
    housing_like_frame(n, seed).to_csv(path, index=False)
    return path


def write_tiny_rtdl(root: Path, sizes: tuple[int, int, int] = (16, 8, 8), seed: int = 0) -> Path:
    """An FT-Transformer split folder: 5 numeric and 2 categorical features, a regression target, ``info.json``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "val", "test"), sizes):
        np.save(root / f"N_{split}.npy", rng.normal(size=(n, 5)).astype(np.float32))
        np.save(root / f"C_{split}.npy", rng.choice(np.array(["a", "b", "c"]), size=(n, 2)))
        np.save(root / f"y_{split}.npy", rng.normal(size=n).astype(np.float32))
    info = {"name": "tiny___0", "task_type": "regression", "n_num_features": 5, "n_cat_features": 2,
            "train_size": sizes[0], "val_size": sizes[1], "test_size": sizes[2]}
    (root / "info.json").write_text(json.dumps(info))
    return root


TABLE_WRITERS = {
    "byol.data.tabular.TableFileDataModule": (write_tiny_csv, "path"),
    "byol.data.tabular.RTDLSplitDataModule": (write_tiny_rtdl, "root"),
    "byol.data.tabular.SklearnTableDataModule": None,  # ships inside scikit-learn
}


def tabular_overrides(data: dict, root: Path) -> list[str]:
    """CLI overrides that point a recipe's ``data`` section (``class_path``, ``init_args``) at a copy in ``root``."""
    entry = TABLE_WRITERS[data["class_path"]]
    if entry is None:
        return []
    writer, arg = entry
    return [f"--data.init_args.{arg}", str(writer(root))]
