"""The papers' augmented linear protocol: a head on a frozen backbone, crops on the fly, SGD Nesterov, cosine lr."""

import math
import subprocess
import sys

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from byol.eval.augmented_linear import AugmentedLinearProbe
from byol.views.image import ImagePreprocess

COLOURS = torch.tensor([[220, 30, 30], [30, 220, 30], [30, 30, 220], [220, 220, 30], [30, 220, 220], [220, 30, 220]])


def colour_images(n_per_class: int, seed: int, size: int = 12) -> TensorDataset:
    """uint8 ``(N, 3, size, size)`` images of one noisy colour per class: any crop or flip keeps the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(len(COLOURS)).repeat_interleave(n_per_class)
    x = COLOURS[y][:, :, None, None] + torch.randint(-25, 26, (len(y), 3, size, size), generator=g)
    return TensorDataset(x.clamp(0, 255).to(torch.uint8), y)


class FixedBackbone(nn.Module):
    """A fixed random 1x1 conv, batch norm and average pooling: ``(B, 3, S, S) -> (B, 16)``.

    Linear in the channel means, so the colour classes are linearly decodable; the BN layer has running
    statistics that would move if the backbone were trained or left in train mode.
    """

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 16, 1)
        self.bn = nn.BatchNorm2d(16)
        self.seen: list[tuple[bool, bool]] = []  # (training mode, grad enabled) at every forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return self.bn(self.conv(x)).mean((2, 3))


class RecordLR(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.total = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.total = trainer.estimated_stepping_batches
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.fixture(scope="module")
def trained():
    L.seed_everything(0)
    backbone = FixedBackbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    preprocess = ImagePreprocess(8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    probe = AugmentedLinearProbe(backbone, preprocess, num_classes=len(COLOURS), lr=0.5, crop_scale=(0.2, 1.0))
    lr_log = RecordLR()
    epochs = 6
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, check_val_every_n_epoch=epochs,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[lr_log])
    train, test = colour_images(24, seed=0), colour_images(10, seed=1)
    trainer.fit(probe, DataLoader(train, batch_size=16, shuffle=True, drop_last=True), DataLoader(test, batch_size=32))
    return dict(probe=probe, backbone=backbone, before=before, trainer=trainer, lr_log=lr_log, test=test,
                preprocess=preprocess, steps_per_epoch=len(train) // 16, epochs=epochs)


def test_colour_classes_reach_100_percent_and_metrics_match_an_independent_count(trained):
    probe, test = trained["probe"], trained["test"]
    metrics = trained["trainer"].callback_metrics
    with torch.no_grad():
        logits = probe.head(trained["backbone"](trained["preprocess"](test.tensors[0])))
    labels = test.tensors[1]
    top1 = (logits.argmax(1) == labels).float().mean().item()
    top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean().item()
    assert top1 == 1.0
    # the logged metrics count exactly the test set (the sanity check's batches do not leak in)
    assert metrics["linear/test_top1"].item() == pytest.approx(top1)
    assert metrics["linear/test_top5"].item() == pytest.approx(top5)


def test_backbone_is_frozen(trained):
    backbone, before = trained["backbone"], trained["before"]
    for key, value in backbone.state_dict().items():  # weights and BN running statistics
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    # every forward, in training as in evaluation, ran in eval mode without autograd
    assert backbone.seen and all(mode == (False, False) for mode in backbone.seen)
    optimizer = trained["trainer"].optimizers[0]
    head_params = {id(p) for p in trained["probe"].head.parameters()}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == head_params


def test_train_mode_leaves_the_backbone_in_eval_mode():
    probe = AugmentedLinearProbe(FixedBackbone(), ImagePreprocess(8, (0.5,) * 3, (0.25,) * 3), num_classes=6)
    probe.train()
    assert probe.head.training and not probe.backbone.training and not probe.backbone.bn.training


def test_optimizer_is_sgd_nesterov_without_weight_decay(trained):
    group = trained["trainer"].optimizers[0].param_groups[0]
    assert isinstance(trained["trainer"].optimizers[0], torch.optim.SGD)
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 0.0


def test_learning_rate_follows_the_cosine_from_lr_to_zero(trained):
    log = trained["lr_log"]
    total = trained["steps_per_epoch"] * trained["epochs"]
    assert log.total == total == len(log.lrs)

    def cosine(t: int) -> float:
        return 0.5 * 0.5 * (1 + math.cos(math.pi * t / total))

    for t in (0, 1, total // 2, total - 1):  # start, middle, end
        assert log.lrs[t] == pytest.approx(cosine(t), abs=1e-7), t
    assert log.lrs == pytest.approx([cosine(t) for t in range(total)], abs=1e-7)
    assert trained["trainer"].optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_training_crops_are_random_and_at_the_backbone_size():
    preprocess = ImagePreprocess(8, mean=(0.5,) * 3, std=(0.25,) * 3)
    probe = AugmentedLinearProbe(FixedBackbone(), preprocess, num_classes=6)
    images = torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8)
    a = probe.augment(preprocess.to_unit_float(images))
    b = probe.augment(preprocess.to_unit_float(images))
    assert a.shape == (4, 3, 8, 8) and not torch.equal(a, b)


def test_cli_augmented_protocol_end_to_end(tmp_path, make_model):
    """``byol linear-eval RUN.ckpt --protocol augmented`` on a one-step BYOL checkpoint."""
    from byol.data import DataModule, Digits

    model = make_model()
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataModule(Digits(split="train", size=8), batch_size=64, num_workers=0))
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)
    out = subprocess.run(
        [sys.executable, "-m", "byol.cli", "linear-eval", str(ckpt), "--protocol", "augmented",
         "--train.class_path", "byol.data.Digits", "--train.init_args.split", "train", "--train.init_args.size", "8",
         "--test.class_path", "byol.data.Digits", "--test.init_args.split", "test", "--test.init_args.size", "8",
         "--epochs", "2", "--batch_size", "128", "--num_workers", "0", "--device", "cpu"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    from byol.eval.results import read_records

    (record,) = read_records(ckpt)  # under run.results/
    assert record["protocol"] == "linear/augmented" and (tmp_path / "run.results").is_dir()
    results = record["metrics"]
    assert results["protocol"] == "augmented" and results["num_test"] == len(Digits(split="test", size=8))
    assert 10.0 < results["top1"] <= results["top5"] <= 100.0
