"""Tabular datasets and datamodules: CSV/parquet files, FT-Transformer ``.npy`` splits, scikit-learn tables.

Every datamodule reads its splits, fits a
:class:`~byol.data.tabular_preprocessing.TabularPreprocessing` on the
**training split only**, and exposes it as ``datamodule.preprocessing``: the
method builds its networks from it (``num_numeric``, ``cardinalities``) and
saves its ``export_config()`` with the model. Samples are
``({"num": (F_num,) float32, "cat": (F_cat,) int64}, label)``; labels are float32
regression values, int64 classes, or ``-1`` for an unlabeled table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch.utils.data import Dataset

from .datamodule import DataModule
from .tabular_preprocessing import MissingPolicy, NumericTransform, TabularPreprocessing, Task, infer_task
from .tabular_sources import (
    DEFAULT_NA_VALUES,
    TableSplits,
    column_splits,
    random_splits,
    read_rtdl_split,
    read_table,
    sklearn_table,
)


class TabularDataset(Dataset):
    """Preprocessed rows held in memory.

    Args:
        num: ``(N, F_num)`` float32 numeric features (``NaN`` = missing).
        cat: ``(N, F_cat)`` int64 category indices.
        labels: ``(N,)`` targets.
    """

    def __init__(self, num: torch.Tensor, cat: torch.Tensor, labels: torch.Tensor) -> None:
        if not len(num) == len(cat) == len(labels):
            raise ValueError(f"num, cat and labels have {len(num)}, {len(cat)} and {len(labels)} rows")
        self.num, self.cat, self.labels = num, cat, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"num": self.num[i], "cat": self.cat[i]}, self.labels[i]

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """All rows as one batch: ``{"num": (N, F_num), "cat": (N, F_cat)}``."""
        return {"num": self.num, "cat": self.cat}


class TabularDataModule(DataModule):
    """Batches of a table's training split (and its validation split for the online probe).

    Fits the preprocessing on ``splits.train`` only, then transforms the three
    splits with it. ``test_set`` is kept for the downstream evaluation
    (:mod:`byol.eval.tabular`); training never reads it.

    Args:
        splits: the raw splits (see :mod:`byol.data.tabular_sources`).
        numeric_transform: ``"quantile"`` (to a standard normal; the FT-Transformer
            benchmark's choice) or ``"standard"``.
        missing: ``"indicator"`` (learned [MISSING] tokens) or ``"error"``.
        batch_size, num_workers, drop_last: see :class:`byol.data.DataModule`.
    """

    def __init__(
        self,
        splits: TableSplits,
        numeric_transform: NumericTransform = "quantile",
        missing: MissingPolicy = "indicator",
        batch_size: int = 256,
        num_workers: int = 0,
        drop_last: bool = True,
    ) -> None:
        self.splits = splits
        self.preprocessing = TabularPreprocessing.fit(
            splits.train, splits.target, splits.numeric, splits.categorical, splits.task,
            numeric_transform, missing, source=f"{splits.source} (training split)",
        )
        train, val, test = (self._dataset(frame, name) for frame, name in
                            ((splits.train, "training"), (splits.val, "validation"), (splits.test, "test")))
        super().__init__(train, val if len(val) else None, batch_size, num_workers, drop_last)
        self.test_set = test

    def _dataset(self, frame: pd.DataFrame, split: str) -> TabularDataset:
        source = f"{self.splits.source} ({split} split)"
        x = self.preprocessing.transform(frame, source)
        return TabularDataset(x["num"], x["cat"], self.preprocessing.labels(frame, source))


class TableFileDataModule(TabularDataModule):
    """A CSV or parquet file, split at random (or by a split column) into train/val/test.

    The file is read by :func:`byol.data.tabular_sources.read_table`: text cells lose the whitespace around them
    (``" Private"`` is ``"Private"``), and errors name a CSV file's rows by their line in the file (the header is
    line 1).

    Args:
        path: ``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet`` or ``.pq`` file, with a header row unless
            ``columns`` is given.
        target: the column to predict downstream; ``None`` for an unlabeled table.
        numeric, categorical: columns whose type is declared; the others are inferred
            (numbers numeric, text and booleans categorical).
        drop: columns to ignore (identifiers, leaks).
        task: ``"auto"`` infers it from the target: text, booleans, and integers with at
            most 20 distinct values that repeat are classes; other numbers are regression targets.
        split_column: a column holding ``train``/``val``/``test`` per row; otherwise a
            random split with ``val_fraction``/``test_fraction`` and ``split_seed``
            (stratified by the target for classification).
        na_values: text cells that are missing values, compared after stripping whitespace; they replace
            pandas' list, and the default is pandas' list (``""``, ``"NA"``, ``"N/A"``, ``"NaN"``, ``"null"``, ...)
            plus ``"?"`` (the UCI repository's marker).
        columns: the column names of a CSV file without a header row (e.g. UCI's ``adult.data``); a first line
            that holds exactly these names is taken as the header row, and a first line with another number of
            fields is an error.
        kwargs: ``numeric_transform``, ``missing``, ``batch_size``, ``num_workers``, ``drop_last`` of
            :class:`TabularDataModule`. A feature column missing in every validation or test row, but never in
            training rows, raises a warning.
    """

    def __init__(
        self,
        path: str,
        target: str | None = None,
        numeric: list[str] | None = None,
        categorical: list[str] | None = None,
        drop: list[str] | None = None,
        task: Task = "auto",
        split_column: str | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        na_values: Sequence[str] = DEFAULT_NA_VALUES,
        columns: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        frame = read_table(path, na_values, columns)
        absent = [c for c in drop or () if c not in frame.columns]
        if absent:
            raise ValueError(f"columns to drop {absent} not found in {path}")
        frame = frame.drop(columns=list(drop or ()))
        if target is not None and target not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise ValueError(f"target column {target!r} not found in {path}; its columns are: {columns}")
        if split_column is not None:
            train, val, test = column_splits(frame, split_column, str(path))
        else:
            stratify = target if target is not None and _is_classification(frame[target], task) else None
            train, val, test = random_splits(frame, val_fraction, test_fraction, split_seed, stratify)
        splits = TableSplits(train, val, test, target, str(path), numeric, categorical, task)
        super().__init__(splits, **kwargs)


class RTDLSplitDataModule(TabularDataModule):
    """A split folder of the FT-Transformer benchmark (``N_*.npy``, ``C_*.npy``, ``y_*.npy``, ``info.json``).

    Its train/val/test split and column types are the folder's.

    Args:
        root: the split folder.
        kwargs: ``numeric_transform``, ``missing``, ``batch_size``, ``num_workers``, ``drop_last`` of
            :class:`TabularDataModule`.
    """

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(read_rtdl_split(Path(root)), **kwargs)


class SklearnTableDataModule(TabularDataModule):
    """A table that ships inside scikit-learn (no download), split at random (stratified for classification).

    Args:
        name: ``breast_cancer`` (569 rows, 30 numeric features, 2 classes),
            ``wine`` (178 rows, 13 features, 3 classes) or ``diabetes``
            (442 rows, 10 features, regression).
        val_fraction, test_fraction, split_seed: the random split.
        batch_size: rows per batch.
        kwargs: ``numeric_transform``, ``num_workers``, ``drop_last`` of :class:`TabularDataModule`; these
            tables have no missing values (``missing="error"``).
    """

    def __init__(
        self,
        name: Literal["breast_cancer", "wine", "diabetes"] = "breast_cancer",
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> None:
        frame, task = sklearn_table(name)
        stratify = "target" if task == "classification" else None
        train, val, test = random_splits(frame, val_fraction, test_fraction, split_seed, stratify)
        splits = TableSplits(train, val, test, "target", f"scikit-learn's {name}", task=task)
        super().__init__(splits, missing="error", batch_size=batch_size, **kwargs)


def _is_classification(target: pd.Series, task: Task) -> bool:
    if task != "auto":
        return task == "classification"
    return bool(target.notna().all()) and infer_task(target) == "classification"
