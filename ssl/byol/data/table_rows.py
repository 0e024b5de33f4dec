"""Labeled rows of a table for evaluating a pretrained tabular backbone (``byol linear-eval``, ``byol knn-eval``).

A pretrained tabular backbone comes with the preprocessing fitted on its pretraining table (column statistics,
category maps, the target's classes). The rows to evaluate on are read raw here and turned into the backbone's
inputs by that preprocessing (:meth:`TableRows.preprocessed`), so evaluation sees exactly what pretraining saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from torch.utils.data import Dataset

from .tabular import TabularDataset
from .tabular_preprocessing import TabularPreprocessing
from .tabular_sources import DEFAULT_NA_VALUES, SPLITS, column_splits, read_table


class TableRows(Dataset):
    """The raw rows of a CSV/parquet file, optionally one split of it.

    Read like the pretraining table (:func:`byol.data.tabular_sources.read_table`); give the same ``na_values``
    and ``columns`` as for pretraining.

    Args:
        path: a ``.csv``, ``.tsv``, ``.csv.gz`` or ``.parquet`` file.
        split: keep only the rows whose ``split_column`` holds this value (``train``, ``val`` or ``test``);
            ``None`` keeps every row (e.g. separate train and test files).
        split_column: the column that assigns rows to splits.
        na_values: text cells that are missing values, compared after stripping whitespace (default: pandas'
            list plus ``"?"``).
        columns: the column names of a CSV file without a header row.
    """

    def __init__(
        self,
        path: str | Path,
        split: str | None = None,
        split_column: str = "split",
        na_values: Sequence[str] = DEFAULT_NA_VALUES,
        columns: list[str] | None = None,
    ) -> None:
        self.source = str(path)
        frame = read_table(path, na_values, columns)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
            frame = dict(zip(SPLITS, column_splits(frame, split_column, self.source)))[split]
        if frame.empty:
            raise ValueError(f"{self.source} has no rows" + (f" in split {split!r}" if split else ""))
        self.frame: pd.DataFrame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i: int):
        raise TypeError(
            "TableRows holds raw rows; turn them into a backbone's inputs with .preprocessed(preprocessing) first"
        )

    def preprocessed(self, preprocessing: TabularPreprocessing) -> TabularDataset:
        """The rows as the backbone's inputs and class labels, through the backbone's fitted preprocessing.

        Raises a ``ValueError`` naming the file when the preprocessing has no classification target (a linear
        probe or kNN needs classes) or when a column is absent or malformed, and a ``UserWarning`` when a feature
        column never missing in the training split is missing in every row.
        """
        target = preprocessing.target
        if target is None or target.task != "classification":
            kind = "no target" if target is None else f"a {target.task} target ({target.name!r})"
            raise ValueError(
                f"the backbone's table preprocessing has {kind}; evaluating on {self.source} needs a "
                "classification target (pretrain with --data.target naming a class column)"
            )
        rows = TabularDataset(**preprocessing.transform(self.frame, self.source),
                              labels=preprocessing.labels(self.frame, self.source))
        rows.num_classes = preprocessing.num_classes  # classes absent from these rows still count
        return rows
