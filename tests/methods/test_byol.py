import copy

import lightning as L
import pytest
import torch

import byol.core.base as base
import byol.core.teacher as teacher_module
from byol.core.schedules import CosineTau


class RecordEMA(L.Callback):
    """Checks every target change against ``t = tau * t_prev + (1 - tau) * o`` worked out independently."""

    def __init__(self) -> None:
        self.changed_at: list[int] = []
        self.max_err = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.prev = [p.clone() for p in module.target.parameters()]
        self.step_before = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        now = list(module.target.parameters())
        if all(torch.equal(a, b) for a, b in zip(self.prev, now)):
            return
        self.changed_at.append(batch_idx)
        assert trainer.global_step == self.step_before + 1
        k, total = self.step_before, trainer.estimated_stepping_batches
        tau = 1 - (1 - 0.9) * (torch.cos(torch.tensor(torch.pi * k / total)).item() + 1) / 2
        for prev, t, o in zip(self.prev, now, module.online.parameters()):
            self.max_err = max(self.max_err, (t - (tau * prev + (1 - tau) * o)).abs().max().item())


def test_one_ema_update_per_optimizer_step_under_accumulation(make_model, make_data, make_trainer):
    model = make_model(tau_schedule=CosineTau(0.9))
    rec = RecordEMA()
    tr = make_trainer(accumulate_grad_batches=4, callbacks=[rec])
    tr.fit(model, make_data(n=128, batch_size=16))  # 8 batches -> 2 optimizer steps
    assert tr.global_step == 2
    assert rec.changed_at == [3, 7]
    assert rec.max_err < 1e-6


def test_ema_count_matches_optimizer_steps(make_model, make_data, make_trainer, monkeypatch):
    calls = []
    real = teacher_module.ema_update
    monkeypatch.setattr(teacher_module, "ema_update", lambda t, o, tau: (calls.append(tau), real(t, o, tau)))
    tr = make_trainer(accumulate_grad_batches=2)
    tr.fit(make_model(), make_data(n=96, batch_size=16))  # 6 batches -> 3 steps
    assert len(calls) == tr.global_step == 3
    assert calls == sorted(calls)  # tau only grows along the cosine


class GradCheck(L.Callback):
    def on_after_backward(self, trainer, module):
        self.target_grads = [p.grad for p in module.target.parameters()]
        self.missing = [
            n for n, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
        ]


def test_target_never_gets_gradients_and_every_online_parameter_does(make_model, make_data, make_trainer):
    model = make_model()
    cb = GradCheck()
    # from step 2 on: timm zero-initialises the last BN of each residual branch, so at step 0 the branch is cut off
    make_trainer(max_steps=3, callbacks=[cb]).fit(model, make_data())
    assert all(g is None for g in cb.target_grads)
    assert all(not p.requires_grad for p in model.target.parameters())
    assert cb.missing == []


def test_online_probe_does_not_change_the_backbone_update(make_model, make_data, make_trainer):
    with_probe = make_model(num_classes=10)
    without = make_model(num_classes=None)
    without.load_state_dict({k: v for k, v in with_probe.state_dict().items() if not k.startswith("probe.")})
    for model in (with_probe, without):
        L.seed_everything(0)
        make_trainer(max_steps=3, gradient_clip_val=0.5).fit(model, make_data())
    a, b = with_probe.online.state_dict(), without.online.state_dict()
    assert not torch.equal(a["backbone.model.conv1.weight"], make_model().online.state_dict()["backbone.model.conv1.weight"])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_monitors_are_logged(make_model, make_data, make_trainer):
    model = make_model()
    tr = make_trainer(max_epochs=4, log_every_n_steps=1)
    tr.fit(model, make_data(n=128))
    logged = tr.logged_metrics
    for key in ("train/loss_epoch", "train/tau", "train/lr", "train/proj_std", "train/rankme", "train/probe_acc_epoch"):
        assert key in logged, key
    assert 1.0 <= logged["train/rankme"] <= 16.0


def test_nan_loss_is_a_clear_error(make_model, make_data, make_trainer):
    model = make_model()
    with torch.no_grad():
        model.online.backbone.model.conv1.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="loss is nan"):
        make_trainer(max_steps=1).fit(model, make_data())


def test_bf16_mixed_precision_and_channels_last_run(make_model, make_data, make_trainer):
    model = make_model(channels_last=True)
    before = copy.deepcopy(model.online.state_dict())
    make_trainer(max_steps=2, precision="bf16-mixed").fit(model, make_data())
    assert model.online.backbone.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    after = model.online.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def test_nan_loss_read_late_stops_before_a_checkpoint_is_written(make_model, make_data, make_trainer, tmp_path):
    """On an accelerator the NaN flag is read on logging steps only (no host sync per step); a checkpoint save
    reads it first, so diverged weights never replace the last good checkpoint."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    model = make_model()
    model._read_loss_now = lambda loss: False  # as on a GPU between logging steps
    with torch.no_grad():
        model.online.backbone.model.conv1.weight.fill_(float("nan"))
    good = tmp_path / "ckpts" / "last.ckpt"
    good.parent.mkdir()
    good.write_bytes(b"a good checkpoint")
    checkpoints = ModelCheckpoint(dirpath=good.parent, every_n_train_steps=2, save_last=True, save_top_k=-1)
    with pytest.raises(FloatingPointError, match="BYOL loss is nan at step 0") as err:
        make_trainer(max_steps=4, log_every_n_steps=100, enable_checkpointing=True, callbacks=[checkpoints]).fit(
            model, make_data())
    assert any(entry.name == "on_save_checkpoint" for entry in err.traceback)  # read late, at the save
    assert sorted(p.name for p in good.parent.iterdir()) == ["last.ckpt"] and good.read_bytes() == b"a good checkpoint"


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_a_step_called_by_hand_without_a_trainer_computes_the_loss_and_no_monitors(make_model, monkeypatch):
    """Benchmarks and hand-written loops call the step with no Trainer: no logging step, so no RankMe SVD."""
    monkeypatch.setattr(base, "rankme", lambda *a: pytest.fail("RankMe computed without a Trainer"))
    model = make_model(num_classes=None)
    torch.manual_seed(1)
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    v1, v2, labels = model.training_views((images, torch.full((8,), -1)))
    loss = model.training_step((v1, v2, labels), 0)

    def cosine_term(p, z):  # 2 - 2 cos(p, z), averaged over the batch (the paper's normalised MSE)
        return (2 - 2 * torch.nn.functional.cosine_similarity(p, z, dim=1)).mean()

    p1, p2 = (model.predictor(model.online(v)[1]) for v in (v1, v2))
    z1, z2 = (model.target(v)[1] for v in (v1, v2))
    torch.testing.assert_close(loss, cosine_term(p1, z2) + cosine_term(p2, z1))
    loss.backward()
    assert all(p.grad is not None for p in model.online.parameters())


def test_compiled_training_matches_eager_and_compiles_once(make_model, make_data, make_trainer):
    """``compile`` traces the online and target networks once (no recompiles in later epochs) and trains the
    same weights as eager mode, under the same parameter names. ``aot_eager`` runs torch.compile's capture and
    autograd tracing without generating C++ code, which takes a minute per model on a CPU."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    graphs_after_epoch = []

    class CountGraphs(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            graphs_after_epoch.append(counters["stats"]["unique_graphs"])

    eager = make_model()
    make_trainer(max_epochs=3).fit(eager, make_data(n=64))
    compiled = make_model(compile={"backend": "aot_eager"})
    make_trainer(max_epochs=3, callbacks=[CountGraphs()]).fit(compiled, make_data(n=64))

    assert graphs_after_epoch[0] >= 2 and graphs_after_epoch[0] == graphs_after_epoch[-1]  # online + target, once
    assert eager.state_dict().keys() == compiled.state_dict().keys()
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
