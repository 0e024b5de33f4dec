"""Every method on the one core: what gets gradients, what carries a teacher, how often teachers move, and the
step as a pure function."""

import inspect
from functools import partial

import lightning as L
import pytest
import torch

from byol import BYOL, BarlowTwins, Method, MoCoV3, SimSiam, VICReg
from byol.core.teacher import EMATeacher
from byol.losses import CrossCosineLoss, negative_cosine

HEADS = {
    BYOL: dict(projector_hidden_dim=32, projection_dim=16, predictor_hidden_dim=32),
    SimSiam: dict(projector_hidden_dim=32, projection_dim=16, predictor_hidden_dim=8),
    MoCoV3: dict(projector_hidden_dim=32, projection_dim=16, predictor_hidden_dim=32),
    BarlowTwins: dict(projector_hidden_dim=32, projection_dim=16),
    VICReg: dict(projector_hidden_dim=32, projection_dim=16),
}
METHODS = {
    "BYOL": (BYOL, {}), "BYOL+CCSL": (BYOL, {"cross_similarity": CrossCosineLoss(threshold=0.0)}), "SimSiam": (SimSiam, {}), "MoCoV3": (MoCoV3, {}), "BarlowTwins": (BarlowTwins, {}),
    "BarlowTwins+mixed": (BarlowTwins, {"mixed_samples": 4.0}), "VICReg": (VICReg, {}),
}
WITH_TEACHER = {"BYOL", "BYOL+CCSL", "MoCoV3"}


@pytest.fixture
def build(make_model):
    """A tiny model of any method: the tiny BYOL's backbone, views and optimizer, the method's own heads."""

    def make(name: str, **kwargs) -> Method:
        cls, extra = METHODS[name]
        reference = make_model()
        torch.manual_seed(0)
        return cls(reference.backbone, reference.views, **HEADS[cls], **extra, warmup_epochs=0, num_classes=10,
                   optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-4), **kwargs)

    return make


class Gradients(L.Callback):
    """After each backward: trainable parameters without a gradient, and teacher parameters with one."""

    def __init__(self) -> None:
        self.missing, self.teacher_grads = set(), []

    def on_after_backward(self, trainer, module):
        self.missing |= {n for n, p in module.named_parameters() if p.requires_grad and p.grad is None}
        for _, teacher in module.teachers():
            self.teacher_grads += [p.grad for p in teacher.parameters()]


@pytest.mark.parametrize("name", list(METHODS))
def test_every_trainable_parameter_learns_and_teachers_only_where_declared(name, build, make_data, make_trainer):
    model, record = build(name), Gradients()
    make_trainer(max_steps=2, callbacks=[record]).fit(model, make_data())
    assert record.missing == set()
    assert all(g is None for g in record.teacher_grads)
    teachers = dict(model.teachers())
    if name in WITH_TEACHER:
        assert list(teachers) == ["target"] and all(not p.requires_grad for p in teachers["target"].parameters())
    else:  # no dead copy carried, updated or checkpointed
        assert teachers == {} and not any(k.startswith("target.") for k in model.state_dict())


@pytest.mark.parametrize("name", sorted(WITH_TEACHER))
def test_a_teacher_moves_once_per_optimizer_step_under_accumulation(name, build, make_data, make_trainer, monkeypatch):
    calls = []
    real = EMATeacher.update
    monkeypatch.setattr(EMATeacher, "update", lambda self, step, total: (calls.append(step), real(self, step, total))[1])
    trainer = make_trainer(accumulate_grad_batches=2)
    trainer.fit(build(name), make_data(n=96, batch_size=16))  # 6 batches -> 3 optimizer steps
    assert calls == [0, 1, 2] and trainer.global_step == 3


def test_moco_keys_come_from_the_momentum_encoder_which_follows_its_cosine(build, make_data, make_trainer):
    model = build("MoCoV3")
    before = [p.detach().clone() for p in model.target.parameters()]
    trainer = make_trainer(max_steps=1)
    trainer.fit(model, make_data())
    tau = model.target.tau(0, trainer.estimated_stepping_batches)
    assert tau == pytest.approx(0.99)
    for b, t, o in zip(before, model.target.parameters(), model.online.parameters()):
        torch.testing.assert_close(t, tau * b + (1 - tau) * o.detach())


def test_simsiam_target_branch_carries_no_gradient(build):
    """SimSiam's gradient is that of the loss with the projections explicitly detached (a second writing)."""
    model = build("SimSiam")
    g = torch.Generator().manual_seed(0)
    v1, v2 = torch.randn(8, 1, 8, 8, generator=g), torch.randn(8, 1, 8, 8, generator=g)
    model.compute_loss((v1, v2, torch.zeros(8, dtype=torch.long))).loss.backward()
    got = [p.grad.clone() for p in model.online.parameters()]
    model.zero_grad()
    _, z1 = model.online(v1)
    _, z2 = model.online(v2)
    p1, p2 = model.predictor(z1), model.predictor(z2)
    cos = torch.nn.functional.cosine_similarity
    (-(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean()) / 2).backward()
    for a, b in zip(got, (p.grad for p in model.online.parameters())):
        torch.testing.assert_close(a, b)
    p, z = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    negative_cosine(p, z).backward()
    assert z.grad is None and p.grad.abs().sum() > 0


def test_simsiam_predictor_keeps_a_fixed_learning_rate(build, make_data, make_trainer):
    model = build("SimSiam")
    trainer = make_trainer(max_steps=3)
    trainer.fit(model, make_data())
    predictor = {id(p) for p in model.predictor.parameters()}
    for group in trainer.optimizers[0].param_groups:
        if any(id(p) in predictor for p in group["params"]):
            assert group["fixed_lr"] and group["lr"] == group["initial_lr"] == 0.05
        elif group["lr"] != model.probe_lr:
            assert group["lr"] < group["initial_lr"]  # the cosine has started


@pytest.mark.parametrize("name", list(METHODS))
def test_compute_loss_runs_without_a_trainer(name, build):
    model = build(name)
    views = model.training_views((torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8), torch.full((8,), -1)))
    out = model.compute_loss(views)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.features.shape == (8, model.backbone.num_features) and len(out.projections) == 8
    if name == "VICReg":
        assert set(out.logs) == {"invariance", "variance", "covariance"}


@pytest.mark.parametrize("cls", [BYOL, SimSiam, MoCoV3, BarlowTwins, VICReg])
def test_no_method_re_lists_the_base_constructor(cls):
    base = set(inspect.signature(Method.__init__).parameters) - {"self"}
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    assert own & base == set()
    assert len(inspect.getsource(inspect.getmodule(cls)).splitlines()) < 90


def test_barlow_twins_scale_multiplies_the_whole_loss(build):
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(8, 1, 8, 8, generator=g), torch.randn(8, 1, 8, 8, generator=g), torch.zeros(8).long())
    plain, scaled = build("BarlowTwins"), build("BarlowTwins", scale_loss=0.1)
    scaled.load_state_dict(plain.state_dict())
    torch.testing.assert_close(scaled.compute_loss(batch).loss, 0.1 * plain.compute_loss(batch).loss)
