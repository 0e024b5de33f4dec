"""Reading tables into train/validation/test splits: CSV, parquet, the FT-Transformer ``.npy`` format, scikit-learn.

Nothing here is fitted: every reader returns raw :class:`TableSplits`
(pandas DataFrames); :class:`byol.data.tabular_preprocessing.TabularPreprocessing`
is fitted on the training split afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .tabular_preprocessing import Task

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
SKLEARN_TABLES = ("breast_cancer", "wine", "diabetes")
SPLITS = ("train", "val", "test")


@dataclass
class TableSplits:
    """A table's three splits and what its source declares about the columns.

    Attributes:
        train, val, test: the rows of each split (same columns).
        target: the target column, ``None`` for an unlabeled table.
        source: a name for error messages (usually the path).
        numeric, categorical: column types the source declares (others are inferred).
        task: ``"regression"``, ``"classification"`` or ``"auto"`` (inferred from the target).
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    target: str | None
    source: str
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    task: Task = "auto"


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (``,``-separated; ``.tsv``: tabs) or parquet file as a DataFrame; empty fields and ``NA`` are missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} not found")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz", ".tsv")):
            frame = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
    except (ValueError, OSError) as err:  # pandas' ParserError and pyarrow's ArrowInvalid are ValueErrors
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read {path} as a {path.suffix} table: {message}; fix or replace the file") from err
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        if frame.shape[1] < 2:
            raise ValueError(f"{path} has {frame.shape[1]} column: is it comma-separated with a header row?")
        return frame
    raise ValueError(f"{path}: unsupported table format; expected a file ending in {', '.join(TABLE_SUFFIXES)}")


def random_splits(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int, stratify: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle the rows (numpy generator seeded with ``seed``) and cut them into train/val/test.

    With ``stratify`` (a column name), the cut is made within every value of
    that column, so each split keeps the class proportions.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no training rows")
    rng = np.random.default_rng(seed)
    groups = [np.arange(len(frame))] if stratify is None else [
        np.flatnonzero((frame[stratify] == v).to_numpy()) for v in pd.unique(frame[stratify])
    ]
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for rows in groups:
        rows = rng.permutation(rows)
        n_val, n_test = round(val_fraction * len(rows)), round(test_fraction * len(rows))
        parts["val"].append(rows[:n_val])
        parts["test"].append(rows[n_val : n_val + n_test])
        parts["train"].append(rows[n_val + n_test :])
    train, val, test = (frame.iloc[np.sort(np.concatenate(parts[s]))] for s in SPLITS)
    return train, val, test


def column_splits(frame: pd.DataFrame, column: str, source: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Splits given by a column whose values are ``train``, ``val`` and ``test`` (the column is removed)."""
    if column not in frame.columns:
        raise ValueError(f"split column {column!r} not found in {source}")
    values = frame[column].astype(str)
    bad = sorted(set(values.unique()) - set(SPLITS))
    if bad:
        raise ValueError(f"split column {column!r} of {source} holds {bad}; expected only {', '.join(SPLITS)}")
    rest = frame.drop(columns=[column])
    train, val, test = (rest[(values == s).to_numpy()] for s in SPLITS)
    return train, val, test


def read_rtdl_split(root: str | Path) -> TableSplits:
    """A split folder of the FT-Transformer benchmark (Gorishniy et al. 2021).

    ``N_{train,val,test}.npy`` (numeric features, float), ``C_*.npy``
    (categorical features, strings; optional), ``y_*.npy`` and ``info.json``
    (``task_type``: ``regression``, ``binclass`` or ``multiclass``; optional
    ``N_cols``/``C_cols`` column names). Arrays are read without unpickling:
    object arrays are refused.
    """
    root = Path(root)
    info_path = root / "info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} not found: {root} is not a split folder of the FT-Transformer benchmark")
    info = json.loads(info_path.read_text())
    task_type = info.get("task_type")
    if task_type not in ("regression", "binclass", "multiclass"):
        raise ValueError(f"{info_path}: task_type must be regression, binclass or multiclass, got {task_type!r}")
    frames, columns = {}, {}
    for split in SPLITS:
        parts = {}
        for kind in ("N", "C"):
            path = root / f"{kind}_{split}.npy"
            if path.is_file():
                array = _load_array(path)
                names = info.get(f"{kind}_cols") or [f"{kind.lower()}{j}" for j in range(array.shape[1])]
                if len(names) != array.shape[1]:
                    raise ValueError(
                        f"{info_path}: {kind}_cols names {len(names)} columns, {path.name} has {array.shape[1]}"
                    )
                parts[kind] = pd.DataFrame(array, columns=names)
        y = _load_array(root / f"y_{split}.npy")
        if not parts:
            raise FileNotFoundError(f"{root} holds neither N_{split}.npy nor C_{split}.npy")
        for kind, part in parts.items():
            if len(part) != len(y):
                raise ValueError(f"{root}: {kind}_{split}.npy has {len(part)} rows but y_{split}.npy has {len(y)}")
        frames[split] = pd.concat([*parts.values(), pd.DataFrame({"target": y})], axis=1)
        columns.setdefault("N", list(parts["N"].columns) if "N" in parts else [])
        columns.setdefault("C", list(parts["C"].columns) if "C" in parts else [])
    return TableSplits(
        frames["train"], frames["val"], frames["test"], target="target", source=str(root),
        numeric=columns["N"], categorical=columns["C"],
        task="regression" if task_type == "regression" else "classification",
    )


def _load_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(
            f"{path} holds Python objects and is not read (it could run code when unpickled): {err}"
        ) from err


def sklearn_table(name: Literal["breast_cancer", "wine", "diabetes"]) -> tuple[pd.DataFrame, Task]:
    """A table embedded in scikit-learn (no download) with its target in column ``target``, and its task."""
    from sklearn import datasets

    loaders = {
        "breast_cancer": (datasets.load_breast_cancer, "classification"),
        "wine": (datasets.load_wine, "classification"),
        "diabetes": (datasets.load_diabetes, "regression"),
    }
    if name not in loaders:
        raise ValueError(f"unknown scikit-learn table {name!r}; expected one of {', '.join(SKLEARN_TABLES)}")
    load, task = loaders[name]
    return load(as_frame=True).frame, task
