"""T-JEPA as a method: built from the datamodule, learns, right gradients, target sees full rows, export and reload."""

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from tabular_formats import write_tiny_csv
from torch.utils.data import DataLoader

import byol.models
from byol.core.schedules import LinearTau
from byol.data.tabular import SklearnTableDataModule, TableFileDataModule
from byol.data.tabular_preprocessing import TabularPreprocessing
from byol.core.checkpoint_io import read_checkpoint
from byol.export import load_pretrained
from byol.methods.tjepa import TJEPA, jepa_loss
from byol.models.state import strict_load
from byol.models.tabular import TabularTransformer, TJEPAPredictor
from byol.models.tokens import gather_tokens

ENCODER = partial(TabularTransformer, dim=8, depth=1, heads=2, ffn_dim=16, num_reg_tokens=2)
PREDICTOR = partial(TJEPAPredictor, dim=4, depth=1, heads=2, ffn_dim=8)


def tiny_tjepa(**kw) -> TJEPA:
    torch.manual_seed(0)
    defaults = dict(encoder=ENCODER, predictor=PREDICTOR, warmup_epochs=0,
                    optimizer=partial(torch.optim.AdamW, lr=3e-3, weight_decay=1e-5))
    return TJEPA(**{**defaults, **kw})


def tiny_table(tmp_path, n: int = 64, batch_size: int = 16) -> TableFileDataModule:
    return TableFileDataModule(str(write_tiny_csv(tmp_path, n=n)), target="median_house_value",
                               val_fraction=0.0, test_fraction=0.0, batch_size=batch_size)


def trainer(**kw) -> L.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, max_epochs=1, num_sanity_val_steps=0)
    return L.Trainer(**{**defaults, **kw})


class RecordLoss(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(trainer.callback_metrics["train/loss_step"].item())


def test_networks_are_built_from_the_datamodule_preprocessing(tmp_path):
    model, data = tiny_tjepa(), tiny_table(tmp_path)
    trainer(max_steps=1).fit(model, data)
    assert model.online.num_table_features == 9
    assert model.online.tokenizer.cardinalities == data.preprocessing.cardinalities
    assert model.backbone is model.target.module and model._backbone_prefix() == "target.module."
    assert model.export_preprocessing() == data.preprocessing.export_config()
    assert model.probe is None  # regression target
    predictor = model.predictor
    model.configure_model()
    assert model.predictor is predictor  # built once


def test_loss_decreases(tmp_path):
    model, record = tiny_tjepa(), RecordLoss()
    trainer(max_epochs=15, callbacks=[record]).fit(model, tiny_table(tmp_path))
    first, last = sum(record.losses[:4]) / 4, sum(record.losses[-4:]) / 4
    assert last < 0.7 * first, (first, last)


def test_online_and_predictor_get_gradients_and_the_target_none(tmp_path):
    class GradCheck(L.Callback):
        def on_after_backward(self, trainer, module):
            self.target = [n for n, p in module.target.named_parameters() if p.grad is not None]
            self.missing = [n for n, p in module.named_parameters()
                            if p.requires_grad and p.numel() and (p.grad is None or p.grad.abs().sum() == 0)]

    check = GradCheck()
    data = tiny_table(tmp_path, n=64, batch_size=64)  # one batch holds the two missing values
    trainer(max_steps=1, callbacks=[check]).fit(tiny_tjepa(), data)
    assert check.target == []
    assert check.missing == []


def test_targets_are_the_full_row_target_tokens_of_the_target_features(tmp_path):
    model, data = tiny_tjepa(), tiny_table(tmp_path)
    trainer(max_steps=1).fit(model, data)
    calls = []
    real = model.backbone.tokens
    model.backbone.tokens = lambda x, keep=None: (calls.append(keep), real(x, keep))[1]
    x, y = next(iter(DataLoader(data.train_set, batch_size=8)))
    torch.manual_seed(0)
    masks = model.masks(8, 9)
    full = model.target_tokens(x)
    assert calls == [None] and full.sequence.shape == (8, 2 + 9, 8)  # the target sees every feature
    targets = gather_tokens(full.patches, masks.targets)
    for b in range(8):
        for m in range(masks.targets.shape[1]):
            for k, f in enumerate(masks.targets[b, m].tolist()):
                torch.testing.assert_close(targets[b, m, k], full.sequence[b, 2 + f])  # after the 2 [REG] tokens
    model.train()
    model.log = lambda *args, **kwargs: None  # outside a training loop
    loss = model.training_step((x, masks, y), 0)
    expected = jepa_loss(model.predict_targets(x, masks), targets)
    torch.testing.assert_close(loss, expected)


def test_jepa_loss_is_the_mean_squared_error_and_checks_shapes():
    p, t = torch.randn(2, 3, 4, 5, requires_grad=True), torch.randn(2, 3, 4, 5, requires_grad=True)
    loss = jepa_loss(p, t)
    torch.testing.assert_close(loss, ((p - t) ** 2).mean())
    loss.backward()
    assert t.grad is None
    with pytest.raises(ValueError, match=r"must both be \(B, M, K_t, d\)"):
        jepa_loss(p[0], t[0])


def test_ema_follows_the_papers_linear_schedule():
    tau = tiny_tjepa().tau_schedule
    assert isinstance(tau, LinearTau)
    assert tau(0, 100) == pytest.approx(0.996) and tau(50, 100) == pytest.approx(0.998) and tau(100, 100) == 1.0


def test_online_probe_is_built_for_a_classification_table():
    data = SklearnTableDataModule("wine", batch_size=32)
    model = tiny_tjepa()
    trainer(max_steps=2, limit_val_batches=1).fit(model, data)
    assert model.probe.linear.out_features == 3 and model.probe.linear.in_features == model.backbone.num_features
    off = tiny_tjepa(num_classes=None)
    trainer(max_steps=1).fit(off, data)
    assert off.probe is None


def test_training_without_a_tabular_datamodule_is_a_clear_error():
    with pytest.raises(TypeError, match="builds its encoder from the table's fitted preprocessing"):
        trainer(max_steps=1).fit(tiny_tjepa(), DataLoader([({"num": torch.zeros(3), "cat": torch.zeros(0)}, 0)]))


def test_checkpoint_holds_the_target_encoder_and_the_preprocessing(tmp_path):
    model, data = tiny_tjepa(), tiny_table(tmp_path)
    tr = trainer(max_epochs=2)
    tr.fit(model, data)
    path = tmp_path / "run.ckpt"
    tr.save_checkpoint(path)
    ckpt = read_checkpoint(path)
    meta = ckpt["byol"]
    assert meta["method"] == "TJEPA" and meta["backbone_prefix"] == "target.module."
    assert meta["preprocessing"] == data.preprocessing.export_config()
    config = dict(meta["backbone"])
    assert config.pop("class") == "TabularTransformer"
    config.pop("num_features")
    backbone = TabularTransformer(**config).eval()
    prefix = meta["backbone_prefix"]
    strict_load(backbone, {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}, "ckpt")
    x, _ = next(iter(DataLoader(data.train_set, batch_size=8)))
    model.eval()
    with torch.no_grad():
        expected = model.embed(x)
        torch.testing.assert_close(backbone(x), expected, rtol=0, atol=0)
        assert not torch.equal(model.backbone.reg_tokens, model.online.reg_tokens)  # the target, not the context encoder
        reloaded = TJEPA.load_from_checkpoint(path, encoder=ENCODER, predictor=PREDICTOR).eval()
        torch.testing.assert_close(reloaded.embed(x), expected, rtol=0, atol=0)
        # new rows: the saved preprocessing and the exported weights reproduce the training representation
        config = {k: v for k, v in meta["preprocessing"].items() if k != "class"}
        rows = TabularPreprocessing(**config).transform(data.splits.train.iloc[:8])
        torch.testing.assert_close(backbone(rows), expected, rtol=0, atol=0)
        if hasattr(byol.models, "TabularTransformer"):
            exported, _, _ = load_pretrained(path)
            torch.testing.assert_close(exported(x), expected, rtol=0, atol=0)


def test_resuming_mid_epoch_ends_where_an_uninterrupted_run_ends(tmp_path):
    data = tiny_table(tmp_path)  # 4 batches per epoch; a checkpoint at step 6 is in the middle of epoch 2
    every_6 = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1)
    L.seed_everything(0)
    straight = tiny_tjepa()
    trainer(max_epochs=3, enable_checkpointing=True, callbacks=[every_6]).fit(straight, data)
    L.seed_everything(0)
    resumed = tiny_tjepa()  # a fresh instance: its networks are built before the checkpoint is restored
    tr = trainer(max_epochs=3)
    tr.fit(resumed, data, ckpt_path=tmp_path / "ckpt" / "epoch=1-step=6.ckpt")
    assert tr.global_step == 12
    for a, b in zip(straight.target.parameters(), resumed.target.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
