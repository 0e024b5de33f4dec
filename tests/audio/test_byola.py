"""BYOL-A = BYOL with the audio views and an AudioNTT encoder: dataset statistics at fit start, gradients, EMA,
constant learning rate, checkpoint export, and the recipes that make it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from audio_formats import write_audio_folder

import yaml

from byol import BYOL
from byol.core.schedules import ConstantTau, WarmupCosine
from byol.data import DataModule
from byol.data.audio import FSDD
from byol.export import export_checkpoint, load_pretrained
from byol.models.audio_ntt import AudioNTT2020
from byol.views.audio import BYOLAViews, LogMelPreprocess
from byol.views.audio_norm import log_mel_moments

ROOT = Path(__file__).resolve().parents[2]
SEGMENT = 0.25  # seconds: 26 frames, enough for AudioNTT2020's three poolings


def _model(**kwargs) -> BYOL:
    """BYOL-A as the recipes build it, at a tiny size: constant tau 0.99, constant learning rate after warm-up."""
    torch.manual_seed(0)
    defaults = dict(
        views=BYOLAViews(segment_seconds=SEGMENT, mixup_memory=16), projector_hidden_dim=32, projection_dim=8,
        predictor_hidden_dim=32, optimizer=partial(torch.optim.Adam, lr=1e-3), num_classes=10, probe_lr=1e-3,
        tau_schedule=ConstantTau(0.99), lr_schedule=partial(WarmupCosine, final_factor=1.0),
    )
    return BYOL(AudioNTT2020(d=16, channels=4), **{**defaults, **kwargs})


def _data(root, batch_size: int = 4) -> DataModule:
    train = FSDD(root, "train", segment_seconds=SEGMENT, crop="center")
    return DataModule(train, FSDD(root, "test", segment_seconds=SEGMENT, crop="center"), batch_size=batch_size,
                      num_workers=0)


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=tmp_path, max_steps=2)
    return L.Trainer(**{**defaults, **kwargs})


class Record(L.Callback):
    """Gradients after backward, the target before and after each step, the learning rates."""

    def __init__(self) -> None:
        self.missing, self.target_grads, self.ema_errors, self.lrs = set(), [], [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.before = [p.detach().clone() for p in module.target.parameters()]

    def on_after_backward(self, trainer, module):
        self.target_grads += [p.grad for p in module.target.parameters()]
        self.missing |= {n for n, p in module.named_parameters()
                         if p.requires_grad and p.grad is None}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        for prev, t, o in zip(self.before, module.target.parameters(), module.online.parameters()):
            self.ema_errors.append((t - (0.99 * prev + 0.01 * o)).abs().max().item())
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("byola")
    root = write_audio_folder(tmp / "recordings")
    model, record = _model(), Record()
    trainer = _trainer(tmp, max_steps=3, callbacks=[record])
    trainer.fit(model, _data(root))
    return model, record, trainer, root


def test_dataset_statistics_are_those_of_the_training_clips(fitted):
    model, _, _, root = fitted
    train = FSDD(root, "train", segment_seconds=SEGMENT, crop="center")
    waves = torch.stack([train[i][0] for i in range(len(train))])
    lms = model.views.log_mel(waves).double()
    assert model.views.pre_norm.statistics() == pytest.approx((lms.mean().item(), lms.std(unbiased=False).item()))
    assert log_mel_moments(lms)[0].item() == lms.numel()


def test_every_online_parameter_learns_and_the_target_follows_by_ema(fitted):
    _, record, trainer, _ = fitted
    assert trainer.global_step == 3
    assert record.missing == set()
    assert all(g is None for g in record.target_grads)
    assert max(record.ema_errors) < 1e-6  # fixed decay 0.99, once per step


def test_learning_rate_is_constant_as_in_the_papers(fitted):
    _, record, _, _ = fitted
    assert record.lrs == [[1e-3, 1e-3, 1e-3]] * 3  # decayed, non-decayed, probe


def test_warm_up_then_constant_learning_rate(tmp_path):
    root = write_audio_folder(tmp_path / "recordings")
    record = Record()
    # 2 batches per epoch, 1 warm-up epoch = 2 warm-up steps at lr x 1/3 and 2/3, then x 1 (recorded after
    # each step: the rate of the next one)
    _trainer(tmp_path, max_steps=4, max_epochs=2, callbacks=[record]).fit(
        _model(warmup_epochs=1, num_classes=None, views=BYOLAViews(segment_seconds=SEGMENT, norm_stats=(-9.0, 4.0))),
        _data(root),
    )
    assert [round(lrs[0] / 1e-3, 4) for lrs in record.lrs] == [round(2 / 3, 4), 1.0, 1.0, 1.0]


def test_checkpoint_carries_the_statistics_and_exports_the_backbone(fitted, tmp_path, audio_exports):
    model, _, trainer, _ = fitted
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)
    restored = _model()
    restored.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    assert not restored.views.pre_norm.needs_statistics  # a resumed run does not recompute them
    backbone, pre, config = load_pretrained(ckpt)
    assert isinstance(pre, LogMelPreprocess) and (pre.mean, pre.std) == model.views.pre_norm.statistics()
    assert config["method"] == "BYOL" and isinstance(backbone, AudioNTT2020)
    wave = torch.randn(2, 4000) * 0.1
    torch.testing.assert_close(backbone(pre(wave)), model.backbone.eval()(model.views.preprocess(wave)))
    out = export_checkpoint(ckpt, tmp_path / "exported")
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize("recipe", ["byola_v1", "byola_v2", "byola_fsdd"])
def test_the_byola_recipes_are_byol_with_the_papers_fixed_decay_and_constant_rate(recipe):
    model = yaml.safe_load((ROOT / "configs" / f"{recipe}.yaml").read_text())["model"]
    assert model["class_path"] == "byol.BYOL"
    args = model["init_args"]
    assert args["views"]["class_path"].startswith("byol.views.audio.BYOLA")
    assert args["backbone"]["class_path"].startswith("byol.models.audio_ntt.AudioNTT")
    assert args["tau_schedule"] == {"class_path": "byol.core.ConstantTau", "init_args": {"value": 0.99}}
    assert args["lr_schedule"] == {"class_path": "byol.core.WarmupCosine", "init_args": {"final_factor": 1.0}}
