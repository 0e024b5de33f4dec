"""Evaluation records: each evaluation adds a file under BACKBONE/results/, ``byol results`` lists them all."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from byol import export_backbone
from byol.cli import main
from byol.eval.results import format_number, read_records, results_dir, write_record

DIGITS = ["--train.class_path", "byol.data.Digits", "--train.init_args.split", "train", "--train.init_args.size", "8",
          "--test.class_path", "byol.data.Digits", "--test.init_args.split", "test", "--test.init_args.size", "8",
          "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/eval/conftest.py


@pytest.fixture
def backbone(tmp_path, make_model) -> Path:
    """A tiny exported image backbone (8x8 grey digits)."""
    model = make_model()
    return export_backbone(model.backbone, tmp_path / "backbone", model.export_preprocessing(), method="BYOL")


@pytest.mark.parametrize(("value", "text"), [
    (1e-4, "0.0001"), (1e-6, "1e-06"), (92.3456, "92.35"), (100.0, "100"), (0.1, "0.1"), (3, "3"), (True, "True"),
    (None, "-"), (math.nan, "nan"), ("cached", "cached"),
])
def test_small_and_large_numbers_print_readably(value, text):
    assert format_number(value) == text


def test_two_evaluations_keep_both_records_and_results_lists_them(backbone, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide table: no cell is cut
    main(["linear-eval", str(backbone), *DIGITS, "--weight_decays", "[0.0001, 0.01]"])
    main(["knn-eval", str(backbone), *DIGITS, "--k", "20"])
    main(["linear-eval", str(backbone), *DIGITS, "--weight_decays", "[0.0001]"])  # same protocol: a new file
    capsys.readouterr()

    files = sorted((backbone / "results").glob("*.json"))
    assert len(files) == 3
    records = read_records(backbone)
    assert [r["protocol"] for r in records] == ["linear/cached", "knn", "linear/cached"]  # oldest first
    first = records[0]
    sha = hashlib.sha256((backbone / "model.safetensors").read_bytes()).hexdigest()[:12]
    assert first["backbone"]["sha256"] == sha and first["backbone"]["method"] == "BYOL"
    assert first["data"]["train"]["class"] == "Digits" and first["data"]["test"]["split"] == "test"
    assert first["data"]["label"] == "Digits[train] -> Digits[test]"
    assert first["arguments"]["weight_decays"] == [0.0001, 0.01] and first["arguments"]["crop"] == "center"
    assert first["inputs"] == {"train": "fixed", "test": "fixed"}  # images: no crop option
    assert set(first["summary"]) == {"top1", "top5"} and first["summary"]["top1"] == first["metrics"]["top1"]
    assert first["seconds"] > 0 and first["date"][:2] == "20" and first["byol_version"]
    assert records[2]["arguments"]["weight_decays"] == [0.0001]

    (backbone / "linear_eval_Digits.json").write_text(json.dumps({"top1": 55.5, "top5": 90.0}))  # the old layout
    main(["results", str(backbone), "--plot", str(tmp_path / "results.png")])
    out = capsys.readouterr().out
    assert out.count("linear/cached") == 2 and "knn" in out and "linear (old file)" in out
    assert "1 old single-file result(s) shown" in out and "top1 55.5%" in out
    assert (tmp_path / "results.png").stat().st_size > 0


def test_records_never_overwrite_each_other(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    paths = [write_record(tmp_path, "knn", {"label": "x"}, {}, {"top1": 50.0}, {"top1": 50.0}, 1.0)
             for _ in range(3)]  # the same content within a second or two: the names must still differ
    assert len(set(paths)) == 3 and all(p.parent == tmp_path / "results" for p in paths)
    assert len(read_records(tmp_path)) == 3


def test_a_checkpoint_keeps_its_records_beside_it(tmp_path):
    assert results_dir(tmp_path / "run.ckpt") == tmp_path / "run.results"
    assert results_dir(tmp_path / "model.safetensors") == tmp_path / "results"
    assert results_dir(tmp_path) == tmp_path / "results"


def test_results_of_a_backbone_without_records_says_so(backbone, capsys):
    main(["results", str(backbone)])
    assert "no evaluation records" in capsys.readouterr().out
