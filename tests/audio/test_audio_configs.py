"""Every BYOL-A recipe parses and runs one training step (fast_dev_run) on a tiny folder of wav files."""

from pathlib import Path

import pytest
import yaml
from audio_formats import write_audio_folder

from byol.cli import ByolCLI

CONFIGS = [Path(__file__).resolve().parents[2] / "configs" / f"byola_{name}.yaml" for name in ("v1", "v2", "fsdd")]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_audio_config_runs_one_step(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_audio_folder(tmp_path / "audio")
    data = yaml.safe_load(config.read_text())["data"]["init_args"]
    overrides = [f"--data.init_args.{split}.init_args.root={root}" for split in ("train", "val") if split in data]
    cli = ByolCLI(args=[
        "fit", "--config", str(config),
        "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.logger", "false", "--trainer.callbacks", "[]", "--trainer.precision", "32-true",  # bf16 is slow on CPUs
        "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
        # the papers' head sizes are exercised elsewhere; small heads keep this step fast
        "--model.init_args.projector_hidden_dim", "64", "--model.init_args.predictor_hidden_dim", "64",
        *overrides,
    ])
    assert cli.trainer.global_step == 1
    assert not cli.model.views.pre_norm.needs_statistics
