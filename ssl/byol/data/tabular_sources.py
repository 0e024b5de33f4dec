"""Reading tables into train/validation/test splits: CSV, parquet, the FT-Transformer ``.npy`` format, scikit-learn.

Nothing here is fitted: every reader returns raw :class:`TableSplits`
(pandas DataFrames); :class:`byol.data.tabular_preprocessing.TabularPreprocessing`
is fitted on the training split afterwards.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


# '?' marks a missing value in the UCI repository's files (e.g. adult); the rest are pandas' defaults
DEFAULT_NA_VALUES: tuple[str, ...] = (
    "?", "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)


def read_table(
    path: str | Path, na_values: Sequence[str] = DEFAULT_NA_VALUES, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A CSV (``,``-separated; ``.tsv``: tabs; ``.csv.gz``: gzipped) or parquet file as a DataFrame.

    Text cells lose the whitespace around them (UCI files write ``", "`` between fields, so ``" Private"`` and
    ``"Private"`` are one category), then a text cell equal to one of ``na_values`` is missing; CSV and parquet
    alike. ``na_values`` replaces pandas' list of missing-value markers (the default adds ``"?"`` to it).

    The rows of a CSV file are labelled by the file line they start on (the index, named ``"line"``: 1-based,
    the header is line 1), so that errors name the line an editor shows; for files without quoted fields
    spanning several lines these are also the line numbers of pandas' parse errors. Should Python's ``csv``
    module and pandas disagree on the rows, and for parquet files, rows keep their positions from 0.

    Args:
        path: the file.
        na_values: text cells that are missing values (compared after stripping whitespace).
        columns: the column names of a CSV file without a header row. A first line that holds exactly these
            names is taken as the header row; a first line with another number of fields raises a
            ``ValueError``. Refused for parquet files, which name their columns.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unsupported suffix, or a file that cannot be parsed; the message names the file (and
            pandas' line, for a CSV line with too many fields).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} not found")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        if columns is not None:
            raise ValueError(f"{path}: columns names the columns of a CSV file without a header row; "
                             "a parquet file has its own names")
        with _naming_file(path):
            frame = pd.read_parquet(path)
        return _clean_text(frame, na_values)
    if not name.endswith((".csv", ".csv.gz", ".tsv")):
        raise ValueError(f"{path}: unsupported table format; expected a file ending in {', '.join(TABLE_SUFFIXES)}")
    sep = "\t" if name.endswith(".tsv") else ","
    header: int | None = 0
    if columns is not None:
        columns = list(columns)
        with _naming_file(path):
            first = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False,
                                skipinitialspace=True).iloc[0]
        first = [str(v).strip() for v in first]
        if len(first) != len(columns):
            raise ValueError(f"{path}: line 1 has {len(first)} fields but columns names {len(columns)}: {columns}")
        header = 0 if first == columns else None  # a header row equal to the names is skipped
    with _naming_file(path):
        frame = pd.read_csv(path, sep=sep, header=header, names=columns, skipinitialspace=True,
                            na_values=list(na_values), keep_default_na=False)
    if frame.shape[1] < 2:
        raise ValueError(f"{path} has {frame.shape[1]} column: is it comma-separated with a header row?")
    lines = _line_numbers(path, sep, header_lines=0 if header is None else 1)
    if lines is not None and len(lines) == len(frame):
        frame.index = lines
    return _clean_text(frame, na_values)


@contextmanager
def _naming_file(path: Path) -> Iterator[None]:
    """Re-raise a parse error of pandas or pyarrow as a ``ValueError`` that names the file."""
    try:
        yield
    except (ValueError, OSError, NotImplementedError) as err:  # pandas' ParserError, pyarrow's ArrowInvalid
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read {path} as a {path.suffix} table: {message}; fix or replace the file") from err


def _line_numbers(path: Path, sep: str, header_lines: int) -> pd.Index | None:
    """The file line (1-based) on which each data row of a CSV file starts, as Python's ``csv`` module splits it.

    Blank lines are skipped as pandas skips them; ``None`` if the ``csv`` module cannot read the file.
    """
    starts, line = [], 0
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as file:
            reader = csv.reader(file, delimiter=sep, skipinitialspace=True)
            for record in reader:
                if record and not (len(record) == 1 and not record[0].strip()):
                    starts.append(line + 1)
                line = reader.line_num
    except (csv.Error, OSError):
        return None
    return pd.Index(starts[header_lines:], name="line")


def _clean_text(frame: pd.DataFrame, na_values: Sequence[str]) -> pd.DataFrame:
    """Strip the whitespace around every text cell; a stripped cell in ``na_values`` becomes missing."""
    markers = set(na_values)
    for name in frame.columns:
        values = frame[name]
        if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
            stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
            frame[name] = stripped.mask(stripped.isin(markers))
    return frame


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
