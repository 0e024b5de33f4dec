"""Downstream protocols for exported backbones: ``byol eval audio`` / ``byol eval tabular``, their checks before
anything long starts, deterministic evaluation inputs, and the DataLoader worker default."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch.utils.data import Subset

from byol import export_backbone
from byol.cli import main
from byol.data import TabularPreprocessing
from byol.data.audio import FSDD
from byol.data.tabular import TableFileDataModule
from byol.eval import protocols
from byol.eval.audio import AudioData
from byol.eval.features import extract_features
from byol.eval.protocols import default_num_workers, deterministic_inputs, eval_audio, eval_tabular, linear_eval
from byol.eval.results import read_records
from byol.export import load_pretrained
from byol.models import TabularTransformer
from byol.models.audio_ntt import AudioNTT2020
from byol.views import ImagePreprocess, LogMelPreprocess

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/eval/conftest.py


def write_clips(folder: Path, names: list[str], seconds: float = 0.6, sample_rate: int = 8000) -> Path:
    """Tones plus noise, one per name (``folder/NAME``; the digit in the name sets the pitch)."""
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pitch = 300 + 200 * int(next(c for c in Path(name).name if c.isdigit()))
        wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(t.shape)
        sf.write(path, wave.astype(np.float32), sample_rate, subtype="PCM_16")
    return folder


def fsdd_copy(root: Path) -> Path:
    """``{digit}_{speaker}_{index}.wav``, 0.6 s clips: 2 digits x 2 speakers x indices 0, 1 (test), 5, 6, 7 (train)."""
    return write_clips(root, [f"{d}_{s}_{i}.wav" for d in (0, 1) for s in ("alice", "bob") for i in (0, 1, 5, 6, 7)])


@pytest.fixture
def audio_backbone(tmp_path) -> Path:
    torch.manual_seed(0)
    return export_backbone(AudioNTT2020(d=16, channels=4), tmp_path / "audio_backbone",
                           LogMelPreprocess().export_config(), method="BYOLA")


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a backbone's weights are loaded: the checks must come first."""
    def fail(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the checks")
    monkeypatch.setattr(protocols, "load_pretrained", fail)


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (3, 2), (4, 3), (8, 4), (64, 4)])
def test_workers_default_to_the_machines_cores(monkeypatch, cores, workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert default_num_workers() == workers


def test_linear_eval_of_audio_clips_is_deterministic_by_default(tmp_path, audio_backbone):
    root = fsdd_copy(tmp_path / "fsdd")  # 0.6 s clips, 0.25 s segments: a random crop would move every time
    train, test = (FSDD(root, split, segment_seconds=0.25) for split in ("train", "test"))
    assert train.crop == "random"  # the class default, for pretraining
    a = linear_eval(str(audio_backbone), train, test, weight_decays=[1e-2, 1.0], batch_size=8, device="cpu")
    b = linear_eval(str(audio_backbone), train, test, weight_decays=[1e-2, 1.0], batch_size=8, device="cpu")
    assert a == b and train.crop == test.crop == "center"
    records = read_records(audio_backbone)
    assert [r["inputs"] for r in records] == [{"train": "center", "test": "center"}] * 2
    assert records[0]["metrics"] == records[1]["metrics"] and records[0]["arguments"]["crop"] == "center"

    model, pre, _ = load_pretrained(audio_backbone)
    first, _ = extract_features(model, test, pre, progress=False)
    assert torch.equal(first, extract_features(model, test, pre, progress=False)[0])

    random_crops = Subset(FSDD(root, "test", segment_seconds=0.25), range(8))  # random only when asked for
    assert deterministic_inputs({"test": random_crops}, crop="dataset") == {"test": "random"}
    torch.manual_seed(0)
    one, _ = extract_features(model, random_crops, pre, progress=False)
    assert not torch.equal(one, extract_features(model, random_crops, pre, progress=False)[0])


def test_eval_audio_on_fsdd_and_on_a_labelled_folder(tmp_path, audio_backbone, capsys):
    root = fsdd_copy(tmp_path / "fsdd")
    common = ["--data.segment_seconds", "0.25", "--repeats", "2", "--batch_size", "8", "--device", "cpu"]
    main(["eval", "audio", str(audio_backbone), "--data.root", str(root), "--baselines", "[logmel]", *common])
    out = capsys.readouterr().out
    assert "conventional split" in out and "speaker held out" in out

    names = [f"{c}/{d}_{i}.wav" for c, d in (("low", 0), ("high", 1)) for i in range(4)]
    write_clips(tmp_path / "train", names)
    write_clips(tmp_path / "test", [n for n in names if n.endswith(("0.wav", "1.wav"))])
    main(["eval", "audio", str(audio_backbone), "--data.root", str(tmp_path / "train"),
          "--data.test", str(tmp_path / "test"), *common])

    fsdd, clips = read_records(audio_backbone)
    assert fsdd["protocol"] == "audio/fsdd" and fsdd["data"]["root"] == str(root)
    splits, encoders = ("conventional", "speaker_held_out"), ("backbone", "logmel")
    assert set(fsdd["summary"]) == {f"{s} {e}" for s in splits for e in encoders}
    assert len(fsdd["metrics"]["conventional"]["backbone"]["runs"]) == 2
    assert set(fsdd["metrics"]["speaker_held_out"]["backbone"]["per_speaker"]) == {"alice", "bob"}
    assert clips["protocol"] == "audio/clips" and set(clips["summary"]) == {"given_split backbone"}
    assert clips["metrics"]["given_split"]["backbone"]["runs"][0]["num_test"] == 4
    assert all(0 <= v <= 100 for r in (fsdd, clips) for v in r["summary"].values())


def test_eval_audio_checks_the_backbone_and_the_data_before_loading(tmp_path, audio_backbone, no_loading):
    image = export_backbone(AudioNTT2020(d=16, channels=4), tmp_path / "image_like",
                            ImagePreprocess(8, (0.5,), (0.25,)).export_config())
    with pytest.raises(ValueError, match="needs a backbone whose preprocessing is LogMelPreprocess.*ImagePreprocess"):
        eval_audio(str(image), AudioData(root=str(fsdd_copy(tmp_path / "fsdd"))))
    with pytest.raises(FileNotFoundError, match="no FSDD recordings.*--data.test"):
        eval_audio(str(audio_backbone), AudioData(root=str(tmp_path)))

    write_clips(tmp_path / "train", ["a/0_0.wav", "a/0_1.wav", "b/1_0.wav", "b/1_1.wav"])
    write_clips(tmp_path / "unlabelled", ["0_0.wav", "1_0.wav"])
    write_clips(tmp_path / "other", ["a/0_0.wav", "c/1_0.wav"])
    with pytest.raises(ValueError, match=r"--data.test .*unlabelled: 2 clip\(s\) have no label"):
        eval_audio(str(audio_backbone), AudioData(root=str(tmp_path / "train"), test=str(tmp_path / "unlabelled")))
    with pytest.raises(ValueError, match=r"classes \['c'\] do not occur in --data.root"):
        eval_audio(str(audio_backbone), AudioData(root=str(tmp_path / "train"), test=str(tmp_path / "other")))


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    return pd.DataFrame({"a": a, "b": b, "colour": colour, "label": np.where(a + b > 0, "yes", "no")})


@pytest.fixture
def table_backbone(tmp_path) -> tuple[Path, Path]:
    """An exported tabular backbone (random weights) and a CSV with a split column."""
    frame = _table(240, seed=0).assign(split=["train"] * 160 + ["val"] * 40 + ["test"] * 40)
    frame.to_csv(tmp_path / "table.csv", index=False)
    preprocessing = TabularPreprocessing.fit(frame.iloc[:160].drop(columns=["split"]), target="label")
    torch.manual_seed(0)
    backbone = TabularTransformer(preprocessing.num_numeric, preprocessing.cardinalities, dim=8, depth=1, heads=2,
                                  ffn_dim=16)
    out = export_backbone(backbone, tmp_path / "table_backbone", preprocessing.export_config(), method="TJEPA")
    return out, tmp_path / "table.csv"


def test_eval_tabular_compares_frozen_features_raw_features_and_trees(table_backbone, capsys):
    backbone, csv = table_backbone
    main(["eval", "tabular", str(backbone), "--data.class_path", "byol.data.tabular.TableFileDataModule",
          "--data.init_args.path", str(csv), "--data.init_args.target", "label",
          "--data.init_args.split_column", "split", "--data.init_args.batch_size", "32", "--seeds", "[0]",
          "--max_epochs", "3", "--device", "cpu"])
    assert "mlp_tjepa" in capsys.readouterr().out
    (record,) = read_records(backbone)
    assert record["protocol"] == "tabular" and record["unit"] == "accuracy %"
    assert set(record["summary"]) == {"mlp_raw", "mlp_tjepa", "hist_gradient_boosting"}
    assert record["metrics"]["rows"] == {"train": 160, "val": 40, "test": 40}
    assert record["data"]["target"] == "label" and record["arguments"]["seeds"] == [0]


def test_eval_tabular_without_a_validation_split_fails_before_loading(table_backbone, no_loading):
    backbone, csv = table_backbone
    data = TableFileDataModule(str(csv), target="label", drop=["split"], val_fraction=0.0, batch_size=32)
    with pytest.raises(ValueError, match="needs a validation split.*val_fraction"):
        eval_tabular(str(backbone), data)
    unlabelled = TableFileDataModule(str(csv), drop=["split", "label"], batch_size=32)
    with pytest.raises(ValueError, match="needs a target column.*data.init_args.target"):
        eval_tabular(str(backbone), unlabelled)


def test_tjepa_eval_checks_the_validation_split_before_pretraining(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("tjepa_eval", ROOT / "scripts" / "tjepa_eval.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def no_training(*args, **kwargs):
        raise AssertionError("pretraining started before the check")
    monkeypatch.setattr(L.Trainer, "fit", no_training)
    monkeypatch.setattr(sys, "argv", ["tjepa_eval.py"])  # LightningCLI looks at the command line too
    _table(100, seed=0).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(SystemExit, match="needs a validation split"):
        script.main(["-c", str(ROOT / "configs" / "tjepa_csv.yaml"), "--", "--data.init_args.path",
                     str(tmp_path / "rows.csv"), "--data.init_args.target", "label",
                     "--data.init_args.val_fraction", "0", "--trainer.default_root_dir", str(tmp_path / "run"),
                     "--trainer.logger", "false", "--data.init_args.batch_size", "32"])
