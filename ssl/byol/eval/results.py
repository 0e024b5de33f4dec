"""Evaluation records: every evaluation of a backbone adds one JSON file under ``BACKBONE/results/``.

``byol linear-eval``, ``byol knn-eval``, ``byol eval audio`` and ``byol eval tabular`` (and the scripts
``byola_fsdd.py`` / ``tjepa_eval.py``) each write a new record, never overwriting one:
``results/<YYYYmmdd-HHMMSS>-<protocol>-<hash>.json`` (``hash``: 8 hex digits of the record's content). A record holds:

- ``backbone``: its path, ``sha256`` (first 12 hex digits of ``model.safetensors``, or of the ``.ckpt``) and
  pretraining ``method``, so a record still says which weights it measured after the folder is overwritten;
- ``protocol`` (``linear/cached``, ``linear/augmented``, ``knn``, ``audio/fsdd``, ``audio/clips``, ``tabular``),
  ``data`` (dataset classes and their root/split/path arguments, a short ``label``), ``inputs`` (whether the
  inputs were deterministic: the crop of audio clips), ``arguments`` (the protocol's settings);
- ``metrics`` (everything the protocol returned) and ``summary`` (its headline numbers, ``unit``);
- ``seconds`` (wall time), ``date`` (ISO 8601 to the millisecond, local time zone) and ``byol_version``.

For a training checkpoint ``RUN.ckpt`` the folder is ``RUN.results/``. ``byol results BACKBONE`` prints every record
as a table, oldest first (newest last), and ``--plot OUT.png`` draws their headline numbers as bars.

Files of the older single-file layout (``linear_eval_<Dataset>.json`` / ``knn_eval_<Dataset>.json`` next to the
backbone, overwritten by each evaluation) are listed too, marked ``(old file)``, dated by their modification time;
they are read, never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from torch.utils.data import ConcatDataset, Dataset, Subset

RESULTS_DIR = "results"
WEIGHTS_NAME = "model.safetensors"
LEGACY_PATTERNS = ("linear_eval_*.json", "knn_eval_*.json")
_DESCRIBED_TYPES = (str, int, float, bool, Path)


def format_number(value: Any, digits: int = 4) -> str:
    """A number as people read it: ``92.34``, ``100``, ``0.0001``, ``1e-06``; anything else as ``str``.

    Floats use the general format with ``digits`` significant digits (``1e-4`` never prints as ``0.00``);
    ``bool`` and ``int`` print as they are, ``None`` as ``-``.
    """
    if value is None:
        return "-"
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def byol_version() -> str:
    """The installed ``byol`` package's version (``"unknown"`` when it is not installed, e.g. run from a tree)."""
    try:
        return metadata.version("byol")
    except metadata.PackageNotFoundError:
        return "unknown"


def weights_file(backbone: str | Path) -> Path:
    """The file whose bytes are the backbone: ``FOLDER/model.safetensors``, or the given file itself."""
    path = Path(backbone)
    return path / WEIGHTS_NAME if path.is_dir() else path


def short_sha256(path: str | Path, length: int = 12) -> str:
    """The first ``length`` hex digits of the sha256 of a file (``"missing"`` when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def results_dir(backbone: str | Path) -> Path:
    """Where the records of ``backbone`` live: ``FOLDER/results``, ``RUN.results`` for ``RUN.ckpt``, and the
    folder's ``results`` for ``FOLDER/model.safetensors``."""
    path = Path(backbone)
    if path.is_dir():
        return path / RESULTS_DIR
    if path.suffix == ".ckpt":
        return path.with_suffix(".results")
    return path.parent / RESULTS_DIR


def describe_dataset(dataset: Dataset) -> dict[str, Any]:
    """What a record says about a dataset: its class, size, and its plain attributes (``root``, ``split``,
    ``size``, ``path``, ``crop``, ...); a ``Subset`` or ``ConcatDataset`` describes what it wraps."""
    out: dict[str, Any] = {"class": type(dataset).__name__}
    try:
        out["num_samples"] = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        pass
    if isinstance(dataset, Subset):
        out["of"] = describe_dataset(dataset.dataset)
    elif isinstance(dataset, ConcatDataset):
        out["of"] = [describe_dataset(d) for d in dataset.datasets]
    else:
        for key, value in vars(dataset).items():
            if not key.startswith("_") and isinstance(value, _DESCRIBED_TYPES):
                out[key] = str(value) if isinstance(value, Path) else value
    return out


def dataset_label(description: dict[str, Any]) -> str:
    """A short name of a described dataset: ``Digits[test]``, ``FSDD[train] recordings``; a ``Subset`` adds its
    size (``Digits[train]:200``), a ``ConcatDataset`` joins its parts with ``+``."""
    inner = description.get("of")
    if isinstance(inner, list):
        return "+".join(dataset_label(d) for d in inner)
    if isinstance(inner, dict):
        return f"{dataset_label(inner)}:{description.get('num_samples', '?')}"
    label = description["class"]
    if description.get("split") is not None:
        label += f"[{description['split']}]"
    place = next((description[k] for k in ("root", "path", "manifest", "source") if description.get(k)), None)
    return f"{label} {Path(str(place)).name}" if place else label


def write_record(
    backbone: str | Path,
    protocol: str,
    data: dict[str, Any],
    arguments: dict[str, Any],
    metrics: dict[str, Any],
    summary: dict[str, float],
    seconds: float,
    unit: str = "accuracy %",
    inputs: dict[str, Any] | None = None,
    method: str | None = None,
) -> Path:
    """Write one evaluation record under :func:`results_dir` (a new file, never an existing one); returns its path.

    Args:
        backbone: the exported folder (or ``.ckpt``) that was evaluated.
        protocol: e.g. ``"linear/cached"``, ``"knn"``, ``"audio/fsdd"``, ``"tabular"``.
        data: what was evaluated on; its ``label`` is the short name the table shows.
        arguments: the protocol's settings.
        metrics: everything the protocol returned (JSON-serialisable).
        summary: the headline numbers (name -> value) for the table and the plot, in ``unit``.
        seconds: wall time of the evaluation.
        inputs: how the inputs were made (e.g. ``{"crop": "center"}``).
        method: the pretraining method (from the backbone's config).
    """
    now = datetime.now().astimezone()
    record = {
        "protocol": protocol,
        "backbone": {"path": str(backbone), "sha256": short_sha256(weights_file(backbone)), "method": method},
        "data": data,
        "inputs": inputs or {},
        "arguments": arguments,
        "summary": summary,
        "unit": unit,
        "metrics": metrics,
        "seconds": round(seconds, 2),
        "date": now.isoformat(timespec="milliseconds"),
        "byol_version": byol_version(),
    }
    text = json.dumps(record, indent=2, default=str) + "\n"
    folder = results_dir(backbone)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{now:%Y%m%d-%H%M%S}-{protocol.replace('/', '-')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    for n in range(1000):
        path = folder / (f"{stem}.json" if n == 0 else f"{stem}-{n}.json")
        try:
            with open(path, "x") as f:  # "x": fails rather than overwrite
                f.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: too many records named {stem}-*.json")


def read_records(backbone: str | Path) -> list[dict[str, Any]]:
    """Every record of ``backbone`` (and its old single-file results), oldest first.

    Each has ``file`` (its path) added; old files become records with protocol ``"<name> (old file)"``, the file's
    modification time as date, and their numbers as summary.
    """
    records = []
    folder = results_dir(backbone)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable result record ({err}); move it out of {folder}") from err
        records.append({**record, "file": str(path)})
    records += _legacy_records(Path(backbone))
    return sorted(records, key=_when)


def _when(record: dict[str, Any]) -> tuple[float, str]:
    """Sort key: the record's date (unparseable or missing dates first), then its file name."""
    try:
        return datetime.fromisoformat(record["date"]).timestamp(), record["file"]
    except (KeyError, TypeError, ValueError):
        return 0.0, record["file"]


def _legacy_records(backbone: Path) -> list[dict[str, Any]]:
    """Records made from files of the single-file layout (see the module docstring)."""
    if backbone.is_dir():
        files = [p for pattern in LEGACY_PATTERNS for p in backbone.glob(pattern)]
    else:
        files = [p for pattern in LEGACY_PATTERNS for p in backbone.parent.glob(f"{backbone.stem}.{pattern}")]
    out = []
    for path in sorted(files):
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        name = path.stem.split(".")[-1]  # linear_eval_Digits
        protocol, _, dataset = name.partition("_eval_")
        out.append({
            "protocol": f"{protocol} (old file)",
            "data": {"label": dataset},
            "summary": {k: values[k] for k in ("top1", "top5") if isinstance(values.get(k), (int, float))},
            "unit": "accuracy %",
            "metrics": values,
            "backbone": {},
            "date": datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds"),
            "file": str(path),
            "legacy": True,
        })
    return out


def records_table(records: list[dict[str, Any]], title: str) -> Table:
    """A rich table of records, in the given order: date, protocol, data, headline numbers, weights hash, wall time."""
    table = Table(title=title)
    for column, justify, wrap in (("#", "right", False), ("date", "left", True), ("protocol", "left", False),
                                  ("data", "left", True), ("result", "left", True), ("weights", "left", False),
                                  ("time", "right", False)):
        table.add_column(column, justify=justify, no_wrap=not wrap)  # type: ignore[arg-type]
    for i, r in enumerate(records, start=1):
        percent = r.get("unit") == "accuracy %"
        summary = ", ".join(f"{k} {format_number(v)}{'%' if percent else ''}" for k, v in r.get("summary", {}).items())
        if summary and r.get("unit") and not percent:
            summary += f" ({r['unit']})"
        seconds = r.get("seconds")
        table.add_row(
            str(i), r.get("date", "")[:16].replace("T", " "), r.get("protocol", "?"),
            r.get("data", {}).get("label", ""), summary, r.get("backbone", {}).get("sha256", "-")[:8],
            "-" if seconds is None else f"{format_number(float(seconds), 3)} s",
        )
    return table


def plot_records(records: list[dict[str, Any]], out: str | Path) -> Path:
    """Horizontal bars of every record's headline numbers, one panel per unit (accuracy %, RMSE); a PNG."""
    from matplotlib import colormaps

    from .plots import _new_figure, _save

    units = list(dict.fromkeys(r.get("unit", "") for r in records if r.get("summary")))
    if not units:
        raise ValueError("no record with numbers to plot")
    rows = {u: [(f"#{i} {r['protocol']} {r.get('data', {}).get('label', '')}: {k}", float(v), r["protocol"])
                 for i, r in enumerate(records, start=1) if r.get("unit", "") == u
                 for k, v in r.get("summary", {}).items()] for u in units}
    height = sum(0.3 * len(v) + 1.0 for v in rows.values())
    fig = _new_figure(10, max(2.5, height))
    protocols = list(dict.fromkeys(p for v in rows.values() for *_, p in v))
    colours = colormaps["tab10"]
    axes = fig.subplots(len(units), 1, squeeze=False, height_ratios=[len(v) + 1 for v in rows.values()])[:, 0]
    for ax, unit in zip(axes, units):
        labels, values, kinds = zip(*rows[unit])
        y = list(range(len(values)))[::-1]  # first record on top
        ax.barh(y, values, color=[colours(protocols.index(p) % 10) for p in kinds])
        ax.set_yticks(y, labels, fontsize=8)
        for yi, v in zip(y, values):
            ax.text(v, yi, f" {format_number(v)}", va="center", fontsize=8)
        ax.set_xlabel(unit)
        ax.margins(x=0.15)
    fig.tight_layout()
    return _save(fig, out)


def show_results(backbone: str, plot: Path | None = None) -> list[dict[str, Any]]:
    """``byol results``: print every evaluation record of a backbone (newest last); optionally plot them.

    Args:
        backbone: an exported backbone folder (or a training ``.ckpt``).
        plot: a PNG to write with the records' headline numbers as bars.
    """
    records = read_records(backbone)
    console = Console()
    if not records:
        console.print(f"no evaluation records for {backbone} (looked in {results_dir(backbone)})")
        return records
    console.print(records_table(records, f"Evaluations of {backbone}"))
    console.print(f"records (oldest first, as numbered) in {results_dir(backbone)}/")
    old = sum(bool(r.get("legacy")) for r in records)
    if old:
        console.print(f"{old} old single-file result(s) shown: dated by the file's modification time, "
                      "without their arguments or the weights' hash")
    current = short_sha256(weights_file(backbone))
    stale = [str(i) for i, r in enumerate(records, 1) if r.get("backbone", {}).get("sha256") not in (None, current)]
    if stale:
        console.print(f"records {', '.join(stale)} measured other weights than {current} (the backbone was replaced)")
    if plot is not None:
        console.print(f"wrote {plot_records(records, plot)}")
    return records


__all__ = [
    "dataset_label", "describe_dataset", "format_number", "plot_records", "read_records", "records_table",
    "results_dir", "short_sha256", "show_results", "write_record",
]
