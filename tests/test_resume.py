"""Exact resume: a run killed mid-epoch and resumed from its last checkpoint ends where an uninterrupted run ends."""

import copy
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml


ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "seed_everything": 3,
    "trainer": {
        "accelerator": "cpu", "devices": 1, "max_epochs": 3, "limit_train_batches": 6, "logger": False,
        "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "init_args": {"every_n_train_steps": 4, "save_last": True, "save_top_k": -1}}],
    },
    "model": {"class_path": "byol.BYOL", "init_args": {
        "backbone": {"class_path": "byol.models.TimmBackbone", "init_args": {
            "name": "resnet10t", "in_chans": 1, "cifar_stem": True,
            "model_kwargs": {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}}},
        "views": {"class_path": "byol.views.GreyImageViews", "init_args": {"size": 8}},
        "projector_hidden_dim": 32, "projection_dim": 16, "predictor_hidden_dim": 32,
        "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05, "momentum": 0.9}},
        "warmup_epochs": 1, "num_classes": 10,
    }},
    "data": {"class_path": "byol.data.DataModule", "init_args": {
        "train": {"class_path": "byol.data.Digits", "init_args": {"split": "train", "size": 8}},
        "batch_size": 16, "num_workers": 0}},
}


# the same run with another method: its class and heads (the other arguments are the core's, shared)
METHODS = {
    "BYOL": {},
    "MoCoV3": {"class_path": "byol.MoCoV3", "heads": {"projector_hidden_dim": 32, "projection_dim": 16,
                                                      "predictor_hidden_dim": 32}},
    "BarlowTwins+mixed": {"class_path": "byol.BarlowTwins", "heads": {"projector_hidden_dim": 32, "projection_dim": 16,
                                                                      "mixed_samples": 4.0}},
}


def _config(method: str) -> dict:
    config = copy.deepcopy(TINY)
    change = METHODS[method]
    if change:
        args = config["model"]["init_args"]
        for key in ("projector_hidden_dim", "projection_dim", "predictor_hidden_dim"):
            del args[key]
        config["model"] = {"class_path": change["class_path"], "init_args": {**args, **change["heads"]}}
    return config


def _fit(run_dir: Path, *extra: str, method: str = "BYOL") -> subprocess.CompletedProcess:
    config = run_dir / "config.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(_config(method)))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run(
        [sys.executable, "-m", "byol.cli", "fit", "-c", str(config), "--trainer.default_root_dir", str(run_dir), *extra],
        cwd=run_dir, env=env, capture_output=True, text=True, timeout=600,
    )


def _final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "final.ckpt", weights_only=True)


@pytest.mark.parametrize("method", list(METHODS))
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, method):
    """Also with a teacher (MoCo v3) and with randomness inside the step (the mixed samples of Barlow Twins)."""
    save_final = ["--trainer.callbacks+=tests_support_save_final.SaveFinal"]
    fit = partial(_fit, method=method)
    # uninterrupted: 3 epochs x 6 batches = 18 steps
    full = fit(tmp_path / "full", *save_final)
    assert full.returncode == 0, full.stderr[-3000:]
    # killed after step 10 (epoch 1, batch 3); the last checkpoint is at step 8, mid-epoch 1
    killed = fit(tmp_path / "resumed", "--trainer.callbacks+=kill_at_step.KillAtStep",
                  "--trainer.callbacks.step=10")
    assert killed.returncode == -9, killed.stderr[-3000:]
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 8 and ckpt["epoch"] == 1
    resumed = fit(tmp_path / "resumed", *save_final, "--ckpt_path", str(last))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _final_state(tmp_path / "full"), _final_state(tmp_path / "resumed")
    assert a["global_step"] == b["global_step"] == 18
    assert any(key.startswith("online.") for key in a["state_dict"])
    for key in a["state_dict"]:
        if key.startswith(("online.", "target.", "predictor.")):
            torch.testing.assert_close(b["state_dict"][key], a["state_dict"][key], rtol=0, atol=1e-6, msg=key)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"] == 18
    assert a["lr_schedulers"][0]["_last_lr"] == b["lr_schedulers"][0]["_last_lr"]
