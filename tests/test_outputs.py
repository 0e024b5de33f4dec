"""Where a run writes: everything under --trainer.default_root_dir, last.ckpt from every recipe, plain permissions."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from byol.core.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))
TINY_RUN = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.accelerator", "cpu", "--data.init_args.num_workers", "0"]


def byol_fit(*args: str, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, "-m", "byol.cli", "fit", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=lambda: os.umask(umask))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_writes_last_ckpt_and_leaves_its_loggers_to_default_root_dir(recipe):
    trainer = yaml.safe_load(recipe.read_text())["trainer"]
    assert trainer["default_root_dir"] == f"checkpoints/runs/{recipe.stem}"
    assert "logger" not in trainer, "a logger with its own save_dir would ignore --trainer.default_root_dir"
    checkpoints = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    assert len(checkpoints) == 1 and checkpoints[0]["init_args"]["save_last"] is True


def test_a_recipe_writes_everything_under_default_root_dir_with_plain_permissions(tmp_path):
    """The demo's recipe, two steps: logs, wandb, config and checkpoints land under DIR and nowhere else; the files
    get 0o666 less the umask (0o027 here: 0o640), not the owner-only 0o600 of a temporary file."""
    cwd, out = tmp_path / "cwd", tmp_path / "elsewhere" / "run"
    cwd.mkdir()
    done = byol_fit("-c", str(ROOT / "configs" / "byol_digits.yaml"), "--trainer.default_root_dir", str(out),
                    *TINY_RUN, cwd=cwd, umask=0o027)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(cwd.iterdir()) == []  # nothing in ./checkpoints/runs/byol_digits
    version = out / "csv" / "version_0"
    last = version / "checkpoints" / "last.ckpt"
    for path in (version / "metrics.csv", version / "config.yaml", last):
        assert path.is_file(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, (path, oct(path.stat().st_mode))
    assert (out / "wandb").is_dir() and any((out / "wandb").glob("offline-run-*"))
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert not list(out.rglob(".*.tmp"))


def test_an_unwritable_default_root_dir_is_named_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    done = byol_fit("-c", str(ROOT / "configs" / "byol_digits.yaml"), "--trainer.default_root_dir",
                    str(blocker / "run"), *TINY_RUN, cwd=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("byol: error: --trainer.default_root_dir") and str(blocker / "run") in last
    assert "not a writable folder" in last


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain"
        plain.write_bytes(b"x")
        atomic = atomic_write(tmp_path / "atomic", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
