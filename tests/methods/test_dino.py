"""DINO on the core: the step against a direct computation, the teacher, the centre, the frozen last layer, the
iBOT patch term and KoLeo, and the head's shape."""

from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from byol import TimmBackbone
from byol.core import DINOHead, EMATeacher, WeightNormLinear
from byol.losses.dino import TeacherTemperature, ibot_patch_loss, koleo_loss
from byol.methods.dino import DINO, masked_patch_loss
from byol.views.patch_masks import RandomPatchMasks

TINY_RESNET = {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}
TINY_VIT = {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2, "dynamic_img_size": True}
HEAD = partial(DINOHead, out_dim=12, hidden_dim=16, bottleneck_dim=8)


def resnet() -> TimmBackbone:
    return TimmBackbone("resnet10t", in_chans=1, cifar_stem=True, model_kwargs=TINY_RESNET)


def vit() -> TimmBackbone:
    return TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs=TINY_VIT)


def dino(backbone=None, **kwargs) -> DINO:
    torch.manual_seed(0)
    return DINO(backbone or resnet(), views=torch.nn.Identity(), head=HEAD, warmup_epochs=0, **kwargs)


def crops(b: int = 4, g: int = 2, l: int = 3, size: int = 16, local: int = 8):
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(g * b, 1, size, size, generator=gen), torch.randn(l * b, 1, local, local, generator=gen),
            torch.zeros(b, dtype=torch.long))


def test_the_head_ends_in_unit_rows_unless_it_has_a_gain():
    head = DINOHead(10, out_dim=7, hidden_dim=16, bottleneck_dim=5)
    assert head(torch.randn(3, 10)).shape == (3, 7)
    assert sum(isinstance(m, torch.nn.Linear) for m in head.mlp) == 3
    torch.testing.assert_close(head.last_layer.weight().norm(dim=1), torch.ones(7))
    free = WeightNormLinear(5, 7, fixed_norm=False)
    with torch.no_grad():
        free.weight_g.copy_(torch.arange(1.0, 8.0))
    torch.testing.assert_close(free.weight().norm(dim=1), torch.arange(1.0, 8.0))
    x = torch.randn(2, 5)
    torch.testing.assert_close(free(x), x @ (free.weight_v / free.weight_v.norm(dim=1, keepdim=True)
                                             * torch.arange(1.0, 8.0)[:, None]).T)


def test_the_step_is_the_cross_entropy_over_pairs_of_different_crops():
    model, (global_crops, local_crops, labels) = dino(), crops()
    out = model.compute_loss((global_crops, local_crops, labels))
    # by hand: student on every crop (global first; the backbone batched per crop size, as its BatchNorms see them),
    # teacher on global crops, centre 0, temperatures 0.1 / 0.04
    features = torch.cat([model.online.backbone(global_crops), model.online.backbone(local_crops)])
    student = model.online.projector(features).chunk(5)
    with torch.no_grad():
        teacher_logits = model.target.module.projector(model.target.module.backbone(global_crops))
    teacher = [F.softmax(t / 0.04, dim=-1) for t in teacher_logits.chunk(2)]
    terms = [-(q * F.log_softmax(s / 0.1, dim=-1)).sum(-1).mean()
             for t, q in enumerate(teacher) for v, s in enumerate(student) if v != t]
    assert len(terms) == 2 * 4
    torch.testing.assert_close(out.loss, torch.stack(terms).mean())
    # the centre moved by (1 - 0.9) of the teacher's mean logits
    torch.testing.assert_close(model.centering.center, 0.1 * teacher_logits.mean(0, keepdim=True))
    # the teacher gets no gradient; the probe sees the teacher's features of the first global crop
    out.loss.backward()
    assert all(p.grad is None for p in model.target.parameters())
    torch.testing.assert_close(out.features, model.target.module.backbone(global_crops)[:4])


def test_without_local_crops_only_the_two_global_crops_pair_up():
    model, (global_crops, _, labels) = dino(), crops()
    out = model.compute_loss((global_crops, global_crops[:0], labels))
    s = model.online.projector(model.online.backbone(global_crops)).chunk(2)
    with torch.no_grad():
        q = F.softmax(model.target.module.projector(model.target.module.backbone(global_crops)) / 0.04, -1).chunk(2)
    expected = (-(q[0] * F.log_softmax(s[1] / 0.1, -1)).sum(-1).mean() - (q[1] * F.log_softmax(s[0] / 0.1, -1)).sum(-1).mean()) / 2
    torch.testing.assert_close(out.loss, expected)


def test_the_teacher_temperature_follows_its_warm_up():
    schedule = TeacherTemperature(temp=0.07, warmup_temp=0.04, warmup_epochs=30)
    assert [schedule(e) for e in (0, 15, 30, 100)] == pytest.approx([0.04, 0.055, 0.07, 0.07])


def test_koleo_adds_its_weighted_term_on_each_global_crop():
    base, koleo = dino(), dino(koleo_weight=0.1)
    batch = crops()
    plain, out = base.compute_loss(batch), koleo.compute_loss(batch)
    features = koleo.online.backbone(batch[0])
    expected = 0.1 * (koleo_loss(features[:4]) + koleo_loss(features[4:]))
    torch.testing.assert_close(out.loss - plain.loss, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logs["koleo"], expected / 0.1, atol=1e-5, rtol=1e-5)


def test_the_gathered_patch_loss_equals_the_dense_one():
    torch.manual_seed(0)
    masks = RandomPatchMasks(probability=0.75)(4, 9)
    student, teacher = torch.randn(4, 9, 6), F.softmax(torch.randn(4, 9, 6), -1)
    dense = ibot_patch_loss(student, teacher, masks.mask, 0.1)
    flat = lambda x: x.flatten(0, 1).index_select(0, masks.index)  # noqa: E731
    torch.testing.assert_close(masked_patch_loss(flat(student), flat(teacher), masks.weight, 4, 0.1), dense)


def test_ibot_masks_the_student_and_matches_the_teachers_patches():
    model = dino(vit(), patch_masks=RandomPatchMasks(probability=1.0))
    global_crops, local_crops, labels = crops()
    torch.manual_seed(3)
    out = model.compute_loss((global_crops, local_crops, labels))
    plain = dino(vit()).compute_loss((global_crops, local_crops, labels))  # same weights (seed 0), no masks
    torch.manual_seed(3)
    masks = model.patch_masks(8, 16)
    assert masks.mask.any(1).all()  # probability 1: every global crop is masked
    backbone, head = model.online.backbone, model.online.projector
    tokens = backbone.tokens(global_crops, mask=masks.mask, mask_token=model.mask_token)
    student = head(tokens.patches.flatten(0, 1)[masks.index])
    with torch.no_grad():
        teacher = model.target.module.projector(model.target.module.backbone.tokens(global_crops).patches.flatten(0, 1)[masks.index])
    expected = masked_patch_loss(student, F.softmax(teacher / 0.04, -1), masks.weight, 8, 0.1)
    torch.testing.assert_close(out.logs["ibot"], expected)
    assert not torch.allclose(out.logs["dino"], plain.logs["dino"])  # the student's global crops were masked
    out.loss.backward()
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0
    torch.testing.assert_close(model.patch_centering.center, 0.1 * teacher.mean(0, keepdim=True))


class NoTokens(torch.nn.Module):
    num_features = 8

    def forward(self, x):
        return x


def test_patch_masks_need_a_backbone_with_tokens():
    with pytest.raises(TypeError, match="patch_masks.*tokens.*NoTokens"):
        dino(NoTokens(), patch_masks=RandomPatchMasks())


def trainable_dino(**kwargs) -> DINO:
    from byol.views import DINOGreyImageViews

    torch.manual_seed(0)
    views = DINOGreyImageViews(global_size=8, local_size=4, num_local_crops=2)
    return DINO(resnet(), views, head=HEAD, num_classes=10, warmup_epochs=0,
                optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-4), **kwargs)


class LastLayerPerEpoch(L.Callback):
    def __init__(self) -> None:
        self.weights = []

    def on_train_epoch_end(self, trainer, module):
        self.weights.append(module.online.projector.last_layer.weight_v.detach().clone())


def test_the_last_layer_stays_frozen_for_its_epochs_and_then_learns(make_data, make_trainer):
    model, record = trainable_dino(freeze_last_layer_epochs=1), LastLayerPerEpoch()
    initial = model.online.projector.last_layer.weight_v.detach().clone()
    conv = model.online.backbone.model.conv1.weight.detach().clone()
    make_trainer(max_epochs=2, callbacks=[record]).fit(model, make_data(n=64, batch_size=16))  # 4 steps an epoch
    assert torch.equal(record.weights[0], initial)  # epoch 0: no gradient, no momentum, no decay
    assert not torch.equal(model.online.backbone.model.conv1.weight, conv)  # while everything else learned
    assert not torch.equal(record.weights[1], initial)  # epoch 1: it learns


def test_the_teacher_moves_once_per_optimizer_step_under_accumulation(make_data, make_trainer, monkeypatch):
    calls = []
    real = EMATeacher.update
    monkeypatch.setattr(EMATeacher, "update", lambda self, step, total: (calls.append(step), real(self, step, total))[1])
    trainer = make_trainer(accumulate_grad_batches=2)
    trainer.fit(trainable_dino(), make_data(n=96, batch_size=16))  # 6 batches -> 3 optimizer steps
    assert calls == [0, 1, 2] and trainer.global_step == 3


def test_the_exported_backbone_is_the_teacher(make_data, make_trainer, tmp_path):
    from byol import load_backbone
    from byol.export import export_checkpoint

    model = trainable_dino(freeze_last_layer_epochs=0)
    trainer = make_trainer(max_steps=2)
    trainer.fit(model, make_data(n=32, batch_size=16))
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    loaded = load_backbone(export_checkpoint(tmp_path / "run.ckpt", tmp_path / "backbone"))
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.target.module.backbone.eval()(x))
    assert not torch.allclose(loaded(x), model.online.backbone.eval()(x))


def test_the_targets_entropies_are_logged():
    uniform, one_hot = torch.full((4, 8), 1 / 8), torch.eye(8)[[0, 1, 2, 3]]
    logs = DINO.target_entropies(uniform)
    torch.testing.assert_close(logs["teacher_entropy"], torch.log(torch.tensor(8.0)))
    torch.testing.assert_close(logs["teacher_batch_entropy"], torch.log(torch.tensor(8.0)))
    logs = DINO.target_entropies(one_hot)  # four different prototypes: sharp rows, a spread batch
    torch.testing.assert_close(logs["teacher_entropy"], torch.tensor(0.0))
    torch.testing.assert_close(logs["teacher_batch_entropy"], torch.log(torch.tensor(4.0)))
    out = dino().compute_loss(crops())
    assert set(out.logs) >= {"dino", "teacher_entropy", "teacher_batch_entropy"}
