"""Every recipe in configs/ parses and runs one training step (fast_dev_run) on tiny data in its native format."""

from pathlib import Path

import pytest
import yaml
from native_formats import write_cifar10, write_image_folder, write_mnist, write_stl10

from byol.cli import ByolCLI

TESTS = Path(__file__).resolve().parent
def _train_class(config: Path) -> str:
    return yaml.safe_load(config.read_text())["data"]["init_args"].get("train", {}).get("class_path", "")


# image recipes of every method; audio and tabular recipes are smoke-tested in tests/audio and tests/tabular
CONFIGS = sorted(p for p in (TESTS.parent / "configs").glob("*.yaml") if _train_class(p).startswith("byol.data.")
                 and not _train_class(p).startswith(("byol.data.audio.", "byol.data.tabular")))

# dataset class -> writer of a tiny copy (None: the data ships with an installed package)
WRITERS = {
    "byol.data.Digits": None,
    "byol.data.CIFAR10": write_cifar10,
    "byol.data.STL10": write_stl10,
    "byol.data.FashionMNIST": write_mnist,
    "byol.data.ImageFolder": write_image_folder,
}


# recipes too large for a quick CPU step (ViT-H: 632M parameters, about 13 GB with the optimizer and the target;
# ViT-B and DINO's ten crops through a ResNet-50: a minute each): the same recipe with fewer blocks or crops and a
# smaller head
SHRINK = {
    name: [
        "--model.init_args.encoder.init_args.model_kwargs",
        '{"class_token": false, "global_pool": "avg", "fc_norm": false, "depth": 1}',
        "--model.init_args.predictor.init_args.depth", "1",
    ]
    for name in ("ijepa_vith14_imagenet.yaml", "ijepa_vitb16_imagenet.yaml")
}
DINO_SMALLER = ["--model.init_args.views.init_args.num_local_crops", "1", "--model.init_args.head.init_args.out_dim", "256"]
SHRINK["dino_resnet50_imagenet.yaml"] = DINO_SMALLER + ["--model.init_args.backbone.init_args.name", "resnet18"]
SHRINK["dino_vits16_imagenet.yaml"] = DINO_SMALLER + [
    "--model.init_args.backbone.init_args.model_kwargs", '{"dynamic_img_size": true, "drop_path_rate": 0.1, "depth": 2}']


def _data_overrides(config: Path, tmp_path: Path) -> list[str]:
    data = yaml.safe_load(config.read_text())["data"]["init_args"]
    args = ["--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0"]
    for split in ("train", "val"):
        if split not in data:
            continue
        writer = WRITERS[data[split]["class_path"]]
        if writer is not None:
            root = writer(tmp_path / split)
            args += [f"--data.init_args.{split}.init_args.root", str(root)]
    return args


def test_every_recipe_is_smoke_tested():
    assert {p.name for p in CONFIGS} >= {
        "byol_digits.yaml", "byol_fashion_mnist.yaml", "byol_cifar10.yaml", "byol_stl10.yaml", "byol_imagenet.yaml",
        "simsiam_digits.yaml", "mocov3_digits.yaml", "barlow_twins_digits.yaml", "vicreg_digits.yaml",
    }
    assert not any(p.name.endswith("_fsdd.yaml") for p in CONFIGS)
    for config in (TESTS.parent / "configs").glob("*.yaml"):
        train = _train_class(config)
        audio = train.startswith("byol.data.audio.")  # tests/audio/test_audio_configs.py runs every audio recipe
        table = yaml.safe_load(config.read_text())["data"]["class_path"].startswith("byol.data.tabular.")  # tests/tabular
        assert config in CONFIGS or audio or table, f"{config.name} has no smoke test"


def test_recipes_with_convolutions_let_cudnn_pick_its_algorithms():
    """``trainer.benchmark``: image and audio recipes (convolutional encoders, fixed input sizes) turn cuDNN's
    autotuner on; without it PyTorch uses its default algorithms, slower on a GPU."""
    for config in (TESTS.parent / "configs").glob("*.yaml"):
        recipe = yaml.safe_load(config.read_text())
        if not recipe["data"]["class_path"].startswith("byol.data.tabular."):
            assert recipe["trainer"].get("benchmark") is True, config.name


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_runs_one_step(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = ByolCLI(args=[
        "fit", "--config", str(config),
        "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.num_nodes", "1", "--trainer.strategy", "auto",
        *_data_overrides(config, tmp_path), *SHRINK.get(config.name, []),
    ])
    assert cli.trainer.global_step == 1
