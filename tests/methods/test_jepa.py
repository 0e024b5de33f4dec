"""One JEPA on images and audio (tables: tests/tabular/test_tjepa.py): the step against a direct computation,
the target, masks drawn for the encoder's grid, training and export end to end."""

from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from byol import TimmBackbone
from byol.core import EMATeacher
from byol.methods.jepa import JEPA
from byol.models import JEPAPredictor
from byol.views.jepa import JEPAAudioViews, JEPAImageViews
from byol.views.jepa_masks import MultiBlockMasks, TimeFrequencyMasks

VIT = {"patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2, "class_token": False, "global_pool": "avg",
       "fc_norm": False}
PREDICTOR = partial(JEPAPredictor, dim=8, depth=1, heads=2, ffn_dim=16)


def image_jepa(**kwargs) -> JEPA:
    torch.manual_seed(0)
    encoder = TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs={"img_size": 16, **VIT})
    views = JEPAImageViews(16, mean=(0.5,), std=(0.5,))
    masks = MultiBlockMasks(num_targets=2, min_keep=2)
    return JEPA(encoder, views, masks, predictor=PREDICTOR, warmup_epochs=0, **kwargs)


def test_the_step_regresses_layer_normalised_target_tokens_at_the_target_positions():
    model = image_jepa()
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    masks = model.masks(3, model.online.grid, "cpu")
    out = model.compute_loss((x, masks, torch.zeros(3, dtype=torch.long)))
    # by hand: the target encoder on every patch, layer norm without affine parameters, the target positions
    with torch.no_grad():
        full = model.target.module.tokens(x).patches  # (3, 16, 16)
        target = F.layer_norm(full, (16,))
    expected_targets = torch.stack([torch.stack([target[b, masks.targets[b, m]] for m in range(2)]) for b in range(3)])
    context = model.online.tokens(x, keep=masks.context)
    predictions = model.predictor(torch.cat([context.prefix, context.patches], 1), masks.context, masks.targets)
    torch.testing.assert_close(out.loss, ((predictions - expected_targets) ** 2).mean())
    # the representation is the target encoder's pooled output, which is its forward
    torch.testing.assert_close(out.features, model.target.module(x))
    out.loss.backward()
    assert all(p.grad is None for p in model.target.parameters())
    assert model.predictor.mask_token.grad is not None and model.online.model.patch_embed.proj.weight.grad is not None


def test_the_context_encoder_sees_only_the_context_patches():
    model = image_jepa()
    x = torch.randn(2, 1, 16, 16)
    torch.manual_seed(0)
    masks = model.masks(2, model.online.grid, "cpu")
    seen = set(masks.context[0].tolist())
    hidden = next(p for p in range(16) if p not in seen)
    row, col = divmod(hidden, 4)
    changed = x.clone()
    changed[0, :, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 3.0  # a patch outside sample 0's context
    torch.testing.assert_close(model.predict_targets(changed, masks)[0], model.predict_targets(x, masks)[0])


def test_the_predictor_encodes_positions_on_the_encoders_grid():
    model = image_jepa()
    assert model.online.grid == (4, 4) and model.predictor.grid == (4, 4)
    assert model.predictor.feature_index.shape == (16, 8)


def test_images_train_under_a_trainer_and_the_target_moves_once_per_optimizer_step(make_data, make_trainer, monkeypatch):
    calls = []
    real = EMATeacher.update
    monkeypatch.setattr(EMATeacher, "update", lambda self, step, total: (calls.append(step), real(self, step, total))[1])
    model = image_jepa(num_classes=10, optimizer=partial(torch.optim.AdamW, lr=1e-3))
    before = model.target.module.model.patch_embed.proj.weight.detach().clone()
    trainer = make_trainer(accumulate_grad_batches=2)
    from byol.data import DataModule, Digits
    from torch.utils.data import Subset
    trainer.fit(model, DataModule(Subset(Digits(split="train", size=16), range(96)), batch_size=16, num_workers=0))
    assert calls == [0, 1, 2] and trainer.global_step == 3
    assert not torch.equal(model.target.module.model.patch_embed.proj.weight, before)


def test_audio_jepa_on_log_mel_patches(tmp_path):
    torch.manual_seed(0)
    views = JEPAAudioViews(segment_seconds=0.95, norm_stats=(-8.0, 4.0))
    f, t = views.input_size
    encoder = TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs={**VIT, "img_size": (f, t), "patch_size": 16})
    model = JEPA(encoder, views, TimeFrequencyMasks(num_targets=2, min_keep=2), predictor=PREDICTOR, warmup_epochs=0)
    assert model.online.grid == (4, 6)
    waves = 0.1 * torch.randn(4, views.segment_samples)
    torch.manual_seed(1)
    x, masks, labels = model.training_views((waves, torch.zeros(4, dtype=torch.long)))
    assert x.shape == (4, 1, 64, 96) and masks.context.max() < 24 and masks.targets.max() < 24
    out = model.compute_loss((x, masks, labels))
    assert torch.isfinite(out.loss) and out.features.shape == (4, 16)


def test_a_wrong_input_size_is_named():
    model = image_jepa()
    with pytest.raises(AssertionError, match="Input height"):
        model.target_tokens(torch.randn(1, 1, 20, 20))


def test_the_exported_backbone_is_the_target_encoder(make_trainer, tmp_path):
    from byol import load_backbone
    from byol.data import DataModule, Digits
    from byol.export import export_checkpoint
    from torch.utils.data import Subset

    model = image_jepa(optimizer=partial(torch.optim.AdamW, lr=1e-2))
    trainer = make_trainer(max_steps=2)
    trainer.fit(model, DataModule(Subset(Digits(split="train", size=16), range(32)), batch_size=16, num_workers=0))
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    loaded = load_backbone(export_checkpoint(tmp_path / "run.ckpt", tmp_path / "backbone"))
    x = torch.randn(3, 1, 16, 16)
    torch.testing.assert_close(loaded(x), model.target.module.eval()(x))
    assert not torch.allclose(loaded(x), model.online.eval()(x))


def test_the_step_logs_the_spread_of_the_targets_and_the_loss_relative_to_it():
    model = image_jepa()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(2)
    masks = model.masks(4, model.online.grid, "cpu")
    out = model.compute_loss((x, masks, torch.zeros(4, dtype=torch.long)))
    with torch.no_grad():
        target = F.layer_norm(model.target.module.tokens(x).patches, (16,))
    picked = torch.stack([target[b][masks.targets[b].flatten()] for b in range(4)])  # (B, M * K_t, d)
    variance = ((picked - picked.mean(0)) ** 2).mean()  # over the batch, then over positions and channels
    torch.testing.assert_close(out.logs["target_std"], variance.sqrt())
    torch.testing.assert_close(out.logs["loss_over_variance"], out.loss / variance)
