"""Every audio recipe (BYOL-A and the other methods on FSDD) parses and runs one training step on a tiny folder
of wav files."""

from pathlib import Path

import pytest
import yaml
from audio_formats import write_audio_folder

from byol.cli import ByolCLI

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")  # every audio recipe
                 if "byol.data.audio." in str(yaml.safe_load(p.read_text())["data"]["init_args"].get("train")))
HEADS = ("projector_hidden_dim", "predictor_hidden_dim")  # the papers' sizes are exercised elsewhere; small is fast


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_audio_config_runs_one_step(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_audio_folder(tmp_path / "audio")
    recipe = yaml.safe_load(config.read_text())
    data = recipe["data"]["init_args"]
    heads = [arg for key in HEADS if key in recipe["model"]["init_args"] for arg in (f"--model.init_args.{key}", "64")]
    overrides = [f"--data.init_args.{split}.init_args.root={root}" for split in ("train", "val") if split in data]
    cli = ByolCLI(args=[
        "fit", "--config", str(config),
        "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.logger", "false", "--trainer.callbacks", "[]", "--trainer.precision", "32-true",  # bf16 is slow on CPUs
        "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
        *heads, *overrides,
    ])
    assert cli.trainer.global_step == 1
    assert not cli.model.views.pre_norm.needs_statistics
