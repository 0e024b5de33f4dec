"""Every table recipe (T-JEPA, and the two-view methods on corrupted rows) parses and runs one training step on a
tiny table in its native format."""

from pathlib import Path

import pytest
import torch
import yaml
from tabular_formats import TABLE_WRITERS, tabular_overrides, write_tiny_csv

from torch.utils.data import DataLoader

from byol.cli import ByolCLI
from byol.export import load_pretrained

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")  # every table recipe
                 if yaml.safe_load(p.read_text())["data"]["class_path"].startswith("byol.data.tabular."))
QUIET = ["--trainer.logger", "false", "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]


def test_the_three_recipes_exist():
    assert {p.name for p in CONFIGS} >= {"tjepa_california.yaml", "tjepa_breast_cancer.yaml", "tjepa_csv.yaml"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_recipe_runs_one_step(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load(config.read_text())["data"]
    assert data["class_path"] in TABLE_WRITERS
    cli = ByolCLI(args=[
        "fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu",
        "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0", *QUIET,
        *tabular_overrides(data, tmp_path / "table"),
    ])
    assert cli.trainer.global_step == 1
    if config.name.startswith("tjepa_"):
        assert cli.model.backbone is cli.model.target.module
    else:  # the two-view methods export the table's fitted preprocessing with the backbone
        assert cli.model.export_preprocessing() == cli.datamodule.preprocessing.export_config()
        ckpt = tmp_path / "run.ckpt"
        cli.trainer.save_checkpoint(ckpt)
        backbone, preprocess, _ = load_pretrained(ckpt)  # rows of new tables go through preprocess.transform
        assert preprocess.export_config() == cli.datamodule.preprocessing.export_config()
        rows, _ = next(iter(DataLoader(cli.datamodule.train_set, batch_size=8)))
        with torch.no_grad():
            torch.testing.assert_close(backbone(rows), cli.model.backbone.eval()(rows), rtol=0, atol=0)


def test_generic_recipe_takes_path_and_target_on_the_command_line(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame_path = write_tiny_csv(tmp_path / "t")
    mine = tmp_path / "my.csv"
    mine.write_text(frame_path.read_text().replace("median_house_value", "income"))
    config = next(p for p in CONFIGS if p.name == "tjepa_csv.yaml")
    cli = ByolCLI(args=["fit", "--config", str(config), "--data.path", str(mine), "--data.target", "income",
                        "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu",
                        "--data.init_args.batch_size", "4", *QUIET])
    assert cli.datamodule.preprocessing.target.name == "income" and cli.trainer.global_step == 1
