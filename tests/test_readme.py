"""The README's commands run, so the README cannot drift from the code.

Every command of the README's ``bash`` blocks is either run here, in the README's order, in a scratch folder that
sees the project's ``configs/``, ``scripts/`` and ``checkpoints/demo`` (at tiny sizes where the README's run takes
long), or listed in ``NOT_RUN`` with the reason and the test that covers its code instead (data sets from outside
the project, GPU clusters, the network). A new or changed command fails the first test until it is placed.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

from byol import TimmBackbone, export_backbone
from byol.views import ImagePreprocess

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

# tiny sizes for a pretraining run: one epoch of two batches
TINY = "--trainer.max_epochs 1 --trainer.limit_train_batches 2 --trainer.limit_val_batches 1"

# README command -> what runs instead ("" appended: the command as written; a full command: the stand-in)
RUN = {
    "make demo": "python scripts/demo.py --max-epochs 1 --draws 2 --out demo_out",  # the Makefile's demo target
    "byol fit -c configs/byol_digits.yaml": TINY,
    "byol fit -c configs/vicreg_digits.yaml": TINY,
    "python scripts/compare_methods.py":
        "python scripts/compare_methods.py --epochs 1 --methods VICReg --draws 2 --out compare/table.json",
    "python scripts/compare_methods.py --data table --epochs 100":
        "python scripts/compare_methods.py --data table --epochs 1 --methods VICReg --draws 2 --out compare/rows.json",
    "byol fit -c configs/byol_cifar10.yaml --print_config": "",
    "byol fit -c configs/byol_digits.yaml --ckpt_path checkpoints/runs/byol_digits/csv/version_0/checkpoints/last.ckpt":
        "--trainer.max_epochs 2 --trainer.limit_train_batches 2 --trainer.limit_val_batches 1",
    "byol fit -c configs/byol_digits.yaml --trainer.default_root_dir runs/digits_bs128 --data.init_args.batch_size 128":
        TINY,
    "byol plot-views clip.wav views.png": "",
    "byol fit -c configs/tjepa_breast_cancer.yaml": TINY,
    "byol fit -c configs/tjepa_csv.yaml --data.path my.csv --data.target income": TINY,
    "byol export checkpoints/runs/byol_digits/csv/version_0/checkpoints/last.ckpt my_backbone/": "",
    "byol linear-eval my_backbone --train.class_path byol.data.Digits --train.init_args.split train "
    "--test.class_path byol.data.Digits --test.init_args.split test": "--num_workers 0",
    "byol knn-eval my_backbone --train.class_path byol.data.Digits --train.init_args.split train "
    "--test.class_path byol.data.Digits --test.init_args.split test": "--num_workers 0",
    "byol plot-embeddings my_backbone out.png --data.class_path byol.data.Digits": "",
    "byol results my_backbone --plot my_backbone_results.png": "",
}
NOT_RUN = {
    "make test": "the suite itself",
    "byol fit -c configs/dino_digits.yaml": "tests/test_configs.py runs one step of it; tests/methods/test_dino.py",
    "byol fit -c configs/dino_vits16_imagenet.yaml ...": "needs ImageNet and 8 GPUs; tests/test_configs.py",
    "byol fit -c configs/jepa_digits.yaml": "tests/test_configs.py runs one step of it; tests/methods/test_jepa.py",
    "byol fit -c configs/ijepa_vith14_imagenet.yaml ...": "needs ImageNet and 16 GPUs; tests/test_configs.py",
    "byol fit -c configs/byol_fashion_mnist.yaml": "needs Debian's dataset-fashion-mnist; tests/test_configs.py",
    "byol fit -c configs/byol_cifar10.yaml --data.init_args.train.init_args.root /data/cifar-10-batches-py "
    "--data.init_args.val.init_args.root /data/cifar-10-batches-py": "needs CIFAR-10; tests/test_configs.py",
    "byol fit -c configs/byol_stl10.yaml ...": "needs STL-10; tests/test_configs.py",
    "byol fit -c configs/byol_imagenet.yaml ...": "needs ImageNet and 16 GPUs; tests/test_configs.py",
    "NNODES=2 NPROC_PER_NODE=8 MASTER_ADDR=node0 MASTER_PORT=29500 scripts/launch_torchrun.sh "
    "configs/byol_imagenet.yaml --data.init_args.train.init_args.root /data/imagenet/train":
        "needs two GPU nodes; tests/test_launch.py runs the launcher with two CPU processes",
    "sbatch --nodes 2 scripts/launch_slurm.sbatch configs/byol_imagenet.yaml "
    "--data.init_args.train.init_args.root ...": "needs SLURM; tests/test_launch.py",
    "byol fit -c configs/byola_fsdd.yaml": "needs FSDD (../shared/data); tests/audio/test_audio_configs.py",
    "byol fit -c configs/byola_v1.yaml ...": "needs an audio corpus; tests/audio/test_audio_configs.py",
    "byol fit -c configs/byola_v2.yaml ...": "needs an audio corpus; tests/audio/test_audio_configs.py",
    "python scripts/compare_methods.py --data fsdd --epochs 10 --draws 5":
        "needs FSDD and 25 min; its clip embeddings and probes: tests/audio/test_audio_eval.py, tests/eval/",
    "python scripts/byola_fsdd.py": "needs FSDD; tests/audio/test_audio_eval.py runs the protocol on a tiny copy",
    "byol fit -c configs/tjepa_california.yaml": "needs the FT-Transformer split; tests/tabular/test_tabular_configs.py",
    "python scripts/tjepa_eval.py -c configs/tjepa_california.yaml --threads 1 --seeds 0 1 2 3 4":
        "needs the FT-Transformer split; tests/tabular/test_tabular_eval.py",
    "byol eval audio my_audio_backbone --data.root ../shared/data/fsdd --baselines '[random,logmel]'":
        "needs an audio backbone and FSDD; tests/eval/test_eval_protocols.py runs it on FSDD-like clips",
    "byol eval audio my_audio_backbone --data.root train_clips/ --data.test test_clips/":
        "needs labelled audio folders; tests/eval/test_eval_protocols.py",
    "byol eval tabular my_table_backbone --data.class_path byol.data.tabular.TableFileDataModule "
    "--data.init_args.path my.csv --data.init_args.target income --threads 1":
        "needs a table backbone; tests/eval/test_eval_protocols.py",
    "byol import AudioNTT2020-BYOLA-64x96d2048.pth byola_d2048/ --stats_from my_audio/":
        "needs released weights; tests/test_import.py imports synthetic checkpoints of each format",
    "byol import IN1K-vit.h.14-300e.pth.tar ijepa_vith14/": "needs released weights; tests/test_import.py",
    "byol import timm:resnet50 resnet50_local/ --weights resnet50.safetensors":
        "needs local weights; tests/test_import.py",
    "torchrun --nproc_per_node 8 -m byol.cli linear-eval ...":
        "eight processes; tests/eval/test_distributed_eval.py runs two",
}


def readme_commands() -> list[str]:
    """The commands of the README's bash blocks in order: continuation lines joined, comments and spacing dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("#"):
                continue
            command = " ".join(re.sub(r"\s+#.*$", "", line).split())
            if command:
                commands.append(command)
    return commands


def test_every_readme_command_is_run_or_has_a_reason_not_to():
    commands = readme_commands()
    assert len(commands) == len(set(commands))
    unplaced = [c for c in commands if c not in RUN and c not in NOT_RUN]
    assert not unplaced, f"README commands that tests/test_readme.py neither runs nor excuses: {unplaced}"
    gone = [c for c in [*RUN, *NOT_RUN] if c not in commands]
    assert not gone, f"commands no longer in the README: {gone}"
    demo = re.search(r"^demo:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert demo == "$(BIN)/python scripts/demo.py", "the demo's stand-in above no longer matches the Makefile"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder like the project root: its configs, scripts and released demo backbone, and the README's inputs."""
    ws = tmp_path / "ws"
    (ws / "checkpoints").mkdir(parents=True)
    for name in ("configs", "scripts"):
        (ws / name).symlink_to(ROOT / name)
    (ws / "checkpoints" / "demo").symlink_to(ROOT / "checkpoints" / "demo")
    t = np.arange(16000) / 16000  # clip.wav: one second of a 440 Hz tone with a rising second partial
    soundfile.write(ws / "clip.wav", 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * (600 + 400 * t) * t),
                    16000)
    rng = np.random.default_rng(0)  # my.csv: a small census-like table with a categorical target
    age, hours = rng.integers(18, 70, 600), rng.integers(10, 60, 600)
    work = rng.choice(["private", "public", "self"], 600)
    income = np.where(age + hours + rng.normal(0, 10, 600) > 80, ">50K", "<=50K")
    lines = ["age,hours,workclass,income"] + [f"{a},{h},{w},{i}" for a, h, w, i in zip(age, hours, work, income)]
    (ws / "my.csv").write_text("\n".join(lines) + "\n")
    export_backbone(TimmBackbone("resnet50"), ws / "my_resnet50", ImagePreprocess(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).export_config())
    return ws


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "WANDB_SILENT": "true"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_readme_commands_run_in_order(workspace: Path):
    for command in readme_commands():
        if command not in RUN:
            continue
        extra = RUN[command]
        line = extra if " " in extra and not extra.startswith("--") else f"{command} {extra}".strip()
        start = time.perf_counter()
        done = _shell(line, workspace)
        print(f"{time.perf_counter() - start:6.1f} s  {line}")
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        if command == "make demo":
            assert "Frozen features on held-out digits" in done.stdout
        if command == "python scripts/compare_methods.py":
            table = json.loads((workspace / "compare" / "table.json").read_text())
            assert set(table) == {"VICReg", "random init"} and table["VICReg"]["epochs"] == 1
        if command.startswith("python scripts/compare_methods.py --data table"):
            table = json.loads((workspace / "compare" / "rows.json").read_text())
            assert set(table) == {"VICReg", "random init", "raw features"}
        if command.endswith("--print_config"):
            assert "lr_reference_batch: 256" in done.stdout
    # the demo's run (version_0), the README's first fit, then the run resumed from version_0's last.ckpt: it goes
    # on from that step for one more epoch of two steps
    versions = sorted((workspace / "checkpoints" / "runs" / "byol_digits" / "csv").glob("version_*"))
    assert [v.name for v in versions] == ["version_0", "version_1", "version_2"]
    step = [torch.load(v / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] for v in versions]
    assert step[0] > 2 and step[2] == step[0] + 2
    assert (workspace / "runs" / "digits_bs128" / "csv" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    for out in ("views.png", "out.png", "my_backbone/model.safetensors", "my_backbone/config.json",
                "demo_out/metrics.json", "compare/table.json"):
        assert (workspace / out).is_file(), out
    assert list((workspace / "my_backbone" / "results").glob("*-linear-cached-*.json"))
    assert (workspace / "my_backbone_results.png").is_file()


def test_readme_python_block_runs(workspace: Path, monkeypatch):
    monkeypatch.chdir(workspace)
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["features"].shape == (4, 128)
    exported = load_file(workspace / "my_resnet50" / "model.safetensors")
    assert torch.equal(namespace["model"].state_dict()["conv1.weight"], exported["conv1.weight"])
