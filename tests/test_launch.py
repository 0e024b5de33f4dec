"""Multi-GPU / multi-node launch: the effective-batch line printed at fit start, torchrun and SLURM scripts."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from byol.core.base import Method

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN_SCRIPT = ROOT / "scripts" / "launch_torchrun.sh"
SLURM_SCRIPT = ROOT / "scripts" / "launch_slurm.sbatch"
LINE = re.compile(
    r"effective batch (\d+) = (\d+) per device x (\d+) devices? x (\d+) nodes? x (\d+) accumulation; "
    r"lr (\S+) (?:= (\S+) x \d+/(\d+)|\(as configured)"
)


def parse(text: str) -> list[tuple]:
    """``(batch, per device, devices, nodes, accumulation, lr, base lr or None, reference batch or None)``."""
    return [(*map(int, m.group(1, 2, 3, 4, 5)), float(m.group(6)),
             None if m.group(7) is None else float(m.group(7)), None if m.group(8) is None else int(m.group(8)))
            for m in LINE.finditer(text)]


def check_formula(batch, per_device, devices, nodes, accumulate, lr, base_lr, reference) -> None:
    assert batch == per_device * devices * nodes * accumulate
    if reference is not None:
        assert lr == pytest.approx(base_lr * batch / reference, rel=1e-5)


def test_fit_prints_effective_batch_and_lr_once(make_model, make_data, make_trainer, capsys):
    model = make_model()  # SGD lr 0.05
    make_trainer(fast_dev_run=True, accumulate_grad_batches=2).fit(model, make_data(n=64, batch_size=16))
    found = parse(capsys.readouterr().out)
    assert len(found) == 1
    check_formula(*found[0])
    assert found[0] == (32, 16, 1, 1, 2, 0.05, None, None)


def test_lr_reference_batch_scales_the_method_lr_but_not_the_probe(make_model, make_data, make_trainer, capsys):
    model = make_model(lr_reference_batch=8)  # SGD lr 0.05, online probe on
    trainer = make_trainer(fast_dev_run=True, accumulate_grad_batches=2)
    trainer.fit(model, make_data(n=64, batch_size=16))
    (found,) = parse(capsys.readouterr().out)
    assert found == (32, 16, 1, 1, 2, 0.2, 0.05, 8)  # 0.05 x 32 / 8
    *method_groups, probe_group = trainer.optimizers[0].param_groups
    assert [g["initial_lr"] for g in method_groups] == pytest.approx([0.2] * len(method_groups))
    assert probe_group["initial_lr"] == model.probe_lr


def test_summary_of_a_multi_node_run():
    """The line for 256 per device on 8 devices x 2 nodes, from a stand-in trainer (no processes started)."""
    module = Method(lr_reference_batch=256)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3.2)
    torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.0)  # warm-up start: lr 0, initial_lr 3.2
    module._trainer = SimpleNamespace(
        fit_loop=SimpleNamespace(setup_data=lambda: None), train_dataloader=SimpleNamespace(batch_size=256),
        num_devices=8, num_nodes=2, accumulate_grad_batches=1, optimizers=[optimizer],
    )
    line = module.batch_and_lr_summary()
    assert line == "effective batch 4096 = 256 per device x 8 devices x 2 nodes x 1 accumulation; lr 3.2 = 0.2 x 4096/256"


TINY_CONFIG = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "max_steps": 2, "logger": False, "enable_checkpointing": False,
                "enable_progress_bar": False, "enable_model_summary": False},
    "model": {"class_path": "byol.BYOL", "init_args": {
        "backbone": {"class_path": "byol.models.TimmBackbone", "init_args": {
            "name": "resnet10t", "in_chans": 1, "cifar_stem": True,
            "model_kwargs": {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}}},
        "views": {"class_path": "byol.views.GreyImageViews", "init_args": {"size": 8, "crop_scale": [0.5, 1.0]}},
        "projector_hidden_dim": 32, "projection_dim": 16, "predictor_hidden_dim": 32,
        "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05, "momentum": 0.9}},
        "lr_reference_batch": 16}},
    "data": {"class_path": "byol.data.DataModule", "init_args": {
        "train": {"class_path": "byol.data.Digits", "init_args": {"split": "train", "size": 8}},
        "batch_size": 16, "num_workers": 0}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_", "NNODES", "NPROC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def test_torchrun_script_runs_two_process_ddp_on_cpu(tmp_path):
    """scripts/launch_torchrun.sh with NNODES=1 NPROC_PER_NODE=2: gloo DDP on CPU, two steps."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    env = script_env(NNODES="1", NPROC_PER_NODE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                     TORCHRUN=str(Path(sys.executable).parent / "torchrun"))
    out = subprocess.run([str(TORCHRUN_SCRIPT), str(config), "--trainer.default_root_dir", str(tmp_path / "run")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-4000:]
    found = parse(out.stdout + out.stderr)
    assert len(found) == 1, out.stdout  # rank zero only
    check_formula(*found[0])
    assert found[0] == (2 * 16, 16, 2, 1, 1, 0.1, 0.05, 16)  # two processes: twice the batch, twice the lr
    assert "max_steps=2" in out.stderr


@pytest.fixture
def fake_srun(tmp_path) -> Path:
    """A ``srun`` that prints its arguments, one a line, instead of starting tasks."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    srun.chmod(0o755)
    return bin_dir


def run_sbatch(fake_srun: Path, cwd: Path, *args: str, **slurm: str) -> subprocess.CompletedProcess:
    env = script_env(BYOL="byol", SLURM_JOB_ID="7", SLURM_SUBMIT_DIR=str(cwd), **slurm)
    env["PATH"] = f"{fake_srun}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(SLURM_SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def test_slurm_script_sets_nodes_and_devices_from_slurm(fake_srun, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    out = run_sbatch(fake_srun, tmp_path, "c.yaml", "--trainer.max_epochs", "3",
                     SLURM_JOB_NUM_NODES="2", SLURM_NTASKS_PER_NODE="4", SLURM_GPUS_PER_NODE="a100:4")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:-1] == [
        "--kill-on-bad-exit=1", "byol", "fit", "-c", "c.yaml", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "3", "--trainer.num_nodes", "2", "--trainer.devices", "4",
    ]
    # without --ntasks-per-node, the tasks are spread evenly over the nodes
    out = run_sbatch(fake_srun, tmp_path, "c.yaml", SLURM_JOB_NUM_NODES="3", SLURM_NTASKS="6")
    assert out.returncode == 0 and "--trainer.num_nodes\n3\n--trainer.devices\n2\n" in out.stdout


def test_scripts_reject_bad_setups(fake_srun, tmp_path):
    out = run_sbatch(fake_srun, tmp_path, "missing.yaml", SLURM_JOB_NUM_NODES="1", SLURM_NTASKS_PER_NODE="1")
    assert out.returncode == 2 and "missing.yaml" in out.stderr
    (tmp_path / "c.yaml").write_text("{}\n")
    out = run_sbatch(fake_srun, tmp_path, "c.yaml", SLURM_JOB_NUM_NODES="1", SLURM_NTASKS_PER_NODE="2",
                     SLURM_GPUS_PER_NODE="4")
    assert out.returncode == 2 and "must equal" in out.stderr
    out = subprocess.run([str(TORCHRUN_SCRIPT), "missing.yaml"], cwd=tmp_path, env=script_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "missing.yaml" in out.stderr
    for script in (TORCHRUN_SCRIPT, SLURM_SCRIPT):
        assert os.access(script, os.X_OK), script
