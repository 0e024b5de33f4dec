"""The fitted preprocessing of a table: column types, statistics and category maps, saved with the model.

Fitted on the **training split only** and then applied unchanged to the
validation and test splits and to new rows at inference, so that an exported
T-JEPA backbone sees exactly what it saw while training. Everything it holds is
plain JSON (:meth:`TabularPreprocessing.export_config`), and
``TabularPreprocessing(**config)`` (without ``"class"``) rebuilds it.

Model inputs (:meth:`TabularPreprocessing.transform`):

- ``num``: ``(N, F_num)`` float32, numeric columns standardised (``(x - mean) / std``)
  or quantile-transformed to a standard normal (scikit-learn's
  ``QuantileTransformer(output_distribution="normal")`` with the number of
  quantiles of the FT-Transformer benchmark, ``clip(N_train // 30, 10, 1000)``).
- ``cat``: ``(N, F_cat)`` int64 category indices: ``0`` = [UNKNOWN] (a value not
  seen in the training split, which also raises a warning), ``1`` = [MISSING],
  ``2 + k`` = the ``k``-th training category in sorted order. The cardinality of a
  column is ``2 + len(categories)``.

Missing values (``missing``):

- ``"indicator"`` (default): a missing numeric value stays ``NaN`` in ``num``; the
  T-JEPA tokenizer replaces its token by a learned per-column [MISSING] embedding
  (the downstream baselines impute the training mean and add a 0/1 indicator
  column; gradient-boosted trees take the ``NaN`` natively). A missing categorical
  value gets index 1, whose embedding is learned.
- ``"error"``: any missing feature value raises a ``ValueError`` that names the
  column and the first rows.

A feature column that is missing in every row of a validation/test split or of
new rows, but never was in the training split, raises a ``UserWarning`` naming
the column and the rows' source (usually a column the file leaves empty, or
fills with a marker that is not a missing value to pandas).

Missing target values always raise: drop those rows or fill them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtri

NumericTransform = Literal["standard", "quantile"]
MissingPolicy = Literal["indicator", "error"]
Task = Literal["auto", "regression", "classification"]

UNKNOWN_INDEX = 0
MISSING_INDEX = 1
NUM_RESERVED = 2  # [UNKNOWN] and [MISSING] come before the categories

_BOUNDS_THRESHOLD = 1e-7  # scikit-learn's QuantileTransformer constant
_NUMERIC_LOOKING = 0.9  # a text column whose values parse as numbers this often is a numeric column with typos
_MAX_CLASSES_AUTO = 20  # an integer target with more distinct values than this is a regression target


def _rows(frame_index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    """Where the rows of ``mask`` are: ``"line 7"``, ``"lines 7, 9"`` for a CSV file's rows (an index named
    ``"line"`` holds their file lines, see :func:`byol.data.tabular_sources.read_table`), else ``"rows 4, 7"``
    (the index labels: positions from 0 for a parquet file)."""
    rows = [str(r) for r in frame_index[mask][:limit]]
    more = int(mask.sum()) - len(rows)
    where = ", ".join(rows) + (f" and {more} more" if more > 0 else "")
    if frame_index.name == "line":
        return f"line {where}" if int(mask.sum()) == 1 else f"lines {where}"
    return f"rows {where}"


def category_keys(values: pd.Series) -> pd.Series:
    """The string key of every value (``NaN`` stays ``NaN``); integral floats drop their ``.0``.

    ``3``, ``3.0`` and ``"3"`` all become ``"3"``, so a column read as floats
    (because it had a missing value) matches one read as integers.
    """
    def key(v: Any) -> str:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    raw = values.to_numpy(dtype=object)
    keys = np.full(len(raw), np.nan, dtype=object)
    present = ~pd.isna(raw)
    keys[present] = [key(v) for v in raw[present]]
    return pd.Series(keys, index=values.index, dtype=object)


def parse_numeric(values: pd.Series, column: str, source: str) -> np.ndarray:
    """``values`` as float64 (``NaN`` where missing); a value that is not a number raises a ``ValueError``."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float64).to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    parsed = pd.to_numeric(values, errors="coerce")
    bad = (parsed.isna() & values.notna()).to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in pd.unique(values[bad])[:3])
        raise ValueError(
            f"column {column!r} of {source} is numeric but holds non-numeric values ({examples}) at "
            f"{_rows(values.index, bad)}; fix the file, or declare the column in data.categorical"
        )
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


# ----- columns ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column and its training statistics.

    ``transform="standard"``: ``(x - mean) / std``. ``transform="quantile"``:
    the empirical CDF of the training values (``quantiles``, evenly spaced
    levels in ``[0, 1]``), mapped to a standard normal. ``missing_in_training``:
    whether the training split had missing values in this column (``False`` in
    configs exported before it was recorded).
    """

    name: str
    transform: NumericTransform
    mean: float = 0.0
    std: float = 1.0
    quantiles: tuple[float, ...] = ()
    missing_in_training: bool = False

    @classmethod
    def fit(cls, name: str, values: np.ndarray, transform: NumericTransform) -> NumericColumn:
        """Statistics of the non-missing float64 ``values`` of the training split."""
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError(f"numeric column {name!r} has no value in the training split; drop it (data.drop)")
        had_missing = present.size < values.size
        if transform == "standard":
            std = float(present.std())
            return cls(name, transform, mean=float(present.mean()), std=std if std > 0 else 1.0,
                       missing_in_training=had_missing)
        if transform == "quantile":
            n_quantiles = min(max(min(present.size // 30, 1000), 10), present.size)
            levels = np.linspace(0.0, 1.0, n_quantiles)
            quantiles = np.maximum.accumulate(np.percentile(present, levels * 100))
            return cls(name, transform, quantiles=tuple(float(q) for q in quantiles), missing_in_training=had_missing)
        raise ValueError(f"unknown numeric transform {transform!r} (expected 'standard' or 'quantile')")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed float64 ``values`` (``NaN`` stays ``NaN``)."""
        if self.transform == "standard":
            return (values - self.mean) / self.std
        return _quantile_to_normal(values, np.asarray(self.quantiles))


def _quantile_to_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """scikit-learn's ``QuantileTransformer(output_distribution="normal")`` transform of one column."""
    levels = np.linspace(0.0, 1.0, len(quantiles))
    out = np.full_like(x, np.nan)
    finite = ~np.isnan(x)
    v = x[finite]
    # the average of the forward and backward interpolations handles repeated quantiles symmetrically
    u = 0.5 * (np.interp(v, quantiles, levels) - np.interp(-v, -quantiles[::-1], -levels[::-1]))
    u[v + _BOUNDS_THRESHOLD > quantiles[-1]] = 1.0
    u[v - _BOUNDS_THRESHOLD < quantiles[0]] = 0.0
    bound = _BOUNDS_THRESHOLD - np.spacing(1)
    with np.errstate(divide="ignore"):
        out[finite] = np.clip(ndtri(u), ndtri(bound), ndtri(1 - bound))
    return out


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical column: its training categories (string keys, sorted; see the module docstring for indices)
    and whether the training split had missing values in it (``False`` in configs exported before it was recorded).
    """

    name: str
    categories: tuple[str, ...]
    missing_in_training: bool = False

    @classmethod
    def fit(cls, name: str, values: pd.Series) -> CategoricalColumn:
        return cls(name, tuple(sorted(category_keys(values).dropna().unique())), bool(values.isna().any()))

    @property
    def cardinality(self) -> int:
        """Number of embedding rows: [UNKNOWN], [MISSING] and the categories."""
        return NUM_RESERVED + len(self.categories)

    def codes(self, values: pd.Series, source: str) -> np.ndarray:
        """``(N,)`` int64 indices; unseen values map to [UNKNOWN] with a warning naming them."""
        keys = category_keys(values)
        lookup = {c: NUM_RESERVED + i for i, c in enumerate(self.categories)}
        missing = keys.isna().to_numpy()
        codes = keys.map(lookup).to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        unseen = np.isnan(codes) & ~missing
        if unseen.any():
            examples = ", ".join(repr(v) for v in pd.unique(keys[unseen])[:3])
            warnings.warn(
                f"column {self.name!r} of {source}: {int(unseen.sum())} rows hold categories not seen in the "
                f"training split ({examples}, {_rows(values.index, unseen)}); they map to [UNKNOWN]",
                stacklevel=3,
            )
        codes[unseen] = UNKNOWN_INDEX
        codes[missing] = MISSING_INDEX
        return codes.astype(np.int64)


@dataclass(frozen=True)
class TargetColumn:
    """The prediction target: a regression value in its original units, or class indices over ``classes``."""

    name: str
    task: Literal["regression", "classification"]
    classes: tuple[str, ...] = ()

    @classmethod
    def fit(cls, name: str, values: pd.Series, task: Task, source: str) -> TargetColumn:
        _check_no_missing_target(name, values, source)
        if task == "auto":
            task = infer_task(values)
        if task == "regression":
            parse_numeric(values, name, source)
            return cls(name, "regression")
        return cls(name, "classification", tuple(sorted(category_keys(values).unique())))

    def labels(self, values: pd.Series, source: str) -> torch.Tensor:
        """``(N,)`` float32 regression targets or int64 class indices."""
        _check_no_missing_target(self.name, values, source)
        if self.task == "regression":
            return torch.from_numpy(parse_numeric(values, self.name, source).astype(np.float32))
        keys = category_keys(values)
        lookup = {c: i for i, c in enumerate(self.classes)}
        codes = keys.map(lookup)
        unseen = codes.isna().to_numpy()
        if unseen.any():
            raise ValueError(
                f"target column {self.name!r} of {source} holds classes not seen in the training split "
                f"({', '.join(repr(v) for v in pd.unique(keys[unseen])[:3])}) at {_rows(values.index, unseen)}"
            )
        return torch.from_numpy(codes.to_numpy(dtype=np.int64).copy())


def _check_no_missing_target(name: str, values: pd.Series, source: str) -> None:
    missing = values.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"target column {name!r} of {source} has {int(missing.sum())} missing values at "
            f"{_rows(values.index, missing)}; drop those rows or fill them"
        )


def infer_task(values: pd.Series) -> Literal["regression", "classification"]:
    """``classification`` for text, booleans, and integers with at most 20 distinct values that repeat (at most
    half as many values as rows); else ``regression``."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    v = values.to_numpy(dtype=np.float64)
    distinct = len(np.unique(v))
    integral = bool(np.all(np.mod(v, 1) == 0))
    return "classification" if integral and distinct <= min(_MAX_CLASSES_AUTO, len(v) / 2) else "regression"


def infer_column_types(frame: pd.DataFrame, columns: Sequence[str], source: str) -> tuple[list[str], list[str]]:
    """Split ``columns`` into ``(numeric, categorical)``, in frame order.

    Numbers are numeric, text and booleans categorical. A text column whose
    values mostly (90 %) parse as numbers is a numeric column with typos and
    raises the error of :func:`parse_numeric`, naming the bad values.
    """
    numeric, categorical = [], []
    for name in columns:
        values = frame[name]
        if pd.api.types.is_bool_dtype(values):
            categorical.append(name)
        elif pd.api.types.is_numeric_dtype(values):
            numeric.append(name)
        else:
            present = values.dropna()
            parses = pd.to_numeric(present, errors="coerce").notna().mean() if len(present) else 0.0
            if parses == 1.0:
                numeric.append(name)
            elif parses >= _NUMERIC_LOOKING:
                parse_numeric(values, name, source)
            else:
                categorical.append(name)
    return numeric, categorical


# ----- the whole table ------------------------------------------------------------------------------------


class TabularPreprocessing:
    """Column types, statistics and category maps of a table, fitted on its training split (see the module docstring).

    Build it with :meth:`fit`; ``TabularPreprocessing(**config)`` rebuilds one
    from :meth:`export_config` (the ``"class"`` key removed).

    Args:
        numeric: one dict per numeric column (the fields of :class:`NumericColumn`).
        categorical: one dict per categorical column (the fields of :class:`CategoricalColumn`).
        target: the fields of :class:`TargetColumn`, or ``None`` for an unlabeled table.
        missing: ``"indicator"`` or ``"error"``.
    """

    def __init__(
        self,
        numeric: list[dict[str, Any]],
        categorical: list[dict[str, Any]],
        target: dict[str, Any] | None = None,
        missing: MissingPolicy = "indicator",
    ) -> None:
        if missing not in ("indicator", "error"):
            raise ValueError(f"missing must be 'indicator' or 'error', got {missing!r}")
        self.numeric = [NumericColumn(**{**c, "quantiles": tuple(c.get("quantiles", ()))}) for c in numeric]
        self.categorical = [
            CategoricalColumn(c["name"], tuple(c["categories"]), c.get("missing_in_training", False))
            for c in categorical
        ]
        self.target = None if target is None else TargetColumn(
            **{**target, "classes": tuple(target.get("classes", ()))}
        )
        self.missing = missing
        if not self.numeric and not self.categorical:
            raise ValueError("a table needs at least one feature column")

    @classmethod
    def fit(
        cls,
        train: pd.DataFrame,
        target: str | None = None,
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        task: Task = "auto",
        numeric_transform: NumericTransform = "quantile",
        missing: MissingPolicy = "indicator",
        source: str = "the training split",
    ) -> TabularPreprocessing:
        """Fit on ``train`` (the training split only). Columns not declared as ``numeric`` or ``categorical``
        (and not the ``target``) are typed by :func:`infer_column_types`."""
        if target is not None and target not in train.columns:
            raise ValueError(
                f"target column {target!r} not found in {source}; its columns are: {', '.join(map(str, train.columns))}"
            )
        declared = [*(numeric or ()), *(categorical or ())]
        unknown = [c for c in declared if c not in train.columns]
        if unknown:
            columns = ", ".join(map(str, train.columns))
            raise ValueError(f"declared columns {unknown} not found in {source}; its columns are: {columns}")
        both = set(numeric or ()) & set(categorical or ())
        if both or (target is not None and target in declared):
            raise ValueError(f"columns {sorted(both) or [target]} are declared twice (numeric, categorical or target)")
        rest = [c for c in train.columns if c != target and c not in declared]
        inferred_num, inferred_cat = infer_column_types(train, rest, source)
        num_names, cat_names = [*(numeric or ()), *inferred_num], [*(categorical or ()), *inferred_cat]
        num_cols = [NumericColumn.fit(n, parse_numeric(train[n], n, source), numeric_transform) for n in num_names]
        cat_cols = [CategoricalColumn.fit(n, train[n]) for n in cat_names]
        target_col = None if target is None else TargetColumn.fit(target, train[target], task, source)
        return cls(
            [asdict(c) for c in num_cols],
            [asdict(c) for c in cat_cols],
            None if target_col is None else asdict(target_col),
            missing,
        )

    # ----- schema --------------------------------------------------------------------------------------
    @property
    def num_numeric(self) -> int:
        return len(self.numeric)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows of each categorical column, in feature order."""
        return [c.cardinality for c in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Column names in token order: numeric columns, then categorical ones."""
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def task(self) -> str | None:
        return None if self.target is None else self.target.task

    @property
    def num_classes(self) -> int | None:
        return len(self.target.classes) if self.target is not None and self.target.task == "classification" else None

    # ----- transform -----------------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame, source: str = "the table") -> dict[str, torch.Tensor]:
        """``{"num": (N, F_num) float32, "cat": (N, F_cat) int64}`` for the rows of ``frame`` (others ignored).

        ``source`` names the rows in errors and warnings (e.g. ``"data.csv (validation split)"``). A feature
        column missing in every row but never in the training split raises a ``UserWarning``.
        """
        absent = [n for n in self.feature_names if n not in frame.columns]
        if absent:
            raise ValueError(f"{source} lacks the feature columns {absent} that the model was trained with")
        num = np.empty((len(frame), self.num_numeric), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            values = parse_numeric(frame[col.name], col.name, source)
            self._check_missing(col, np.isnan(values), frame.index, source)
            num[:, j] = col.apply(values)
        cat = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            self._check_missing(col, frame[col.name].isna().to_numpy(), frame.index, source)
            cat[:, j] = col.codes(frame[col.name], source)
        return {"num": torch.from_numpy(num), "cat": torch.from_numpy(cat)}

    __call__ = transform

    def labels(self, frame: pd.DataFrame, source: str = "the table") -> torch.Tensor:
        """``(N,)`` targets (float32 regression values or int64 classes); ``-1`` everywhere for an unlabeled table."""
        if self.target is None:
            return torch.full((len(frame),), -1, dtype=torch.int64)
        if self.target.name not in frame.columns:
            raise ValueError(
                f"target column {self.target.name!r} not found in {source}; its columns are: "
                f"{', '.join(map(str, frame.columns))}"
            )
        return self.target.labels(frame[self.target.name], source)

    def _check_missing(
        self, column: NumericColumn | CategoricalColumn, missing: np.ndarray, index: pd.Index, source: str
    ) -> None:
        """Raise on missing values under ``missing="error"``; warn when a column never missing in training is
        missing in every row."""
        if self.missing == "error" and missing.any():
            raise ValueError(
                f"column {column.name!r} of {source} has {int(missing.sum())} missing values at "
                f"{_rows(index, missing)}; "
                "fill them, or set data.missing=indicator to give them a learned [MISSING] token"
            )
        if len(missing) and missing.all() and not column.missing_in_training:
            warnings.warn(
                f"column {column.name!r} is missing in all {len(missing)} rows of {source}, but never was in the "
                "training split; is it empty in the file, or filled with a marker that is not in na_values?",
                stacklevel=3,
            )

    def export_config(self) -> dict[str, Any]:
        """JSON-serialisable arguments that rebuild this preprocessing (stored with the exported backbone)."""
        return {
            "class": type(self).__name__,
            "numeric": [{**asdict(c), "quantiles": list(c.quantiles)} for c in self.numeric],
            "categorical": [{**asdict(c), "categories": list(c.categories)} for c in self.categorical],
            "target": None if self.target is None else {**asdict(self.target), "classes": list(self.target.classes)},
            "missing": self.missing,
        }
