"""Real Lightning DDP with two CPU processes (gloo): every rank must end with the same online and target weights."""

import pickle
from functools import partial

import lightning as L
import pytest
import torch


class SaveWeights(L.Callback):
    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer, module):
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        torch.save(state, self.out_dir / f"rank{trainer.global_rank}.pt")


def _method(name: str, make_model):
    """The tiny BYOL, or another method on its backbone and views (MoCo v3 and VICReg gather across ranks; DINO's
    centre is a mean over the global batch)."""
    from byol import DINO, MoCoV3, VICReg
    from byol.core import DINOHead
    from byol.views import DINOGreyImageViews

    model = make_model()
    if name == "BYOL":
        return model
    torch.manual_seed(0)
    if name == "DINO":
        views = DINOGreyImageViews(global_size=8, local_size=4, num_local_crops=2)
        return DINO(model.backbone, views, head=partial(DINOHead, out_dim=16, hidden_dim=16, bottleneck_dim=8),
                    num_classes=10, optimizer=model.optimizer_factory)
    heads = dict(projector_hidden_dim=32, projection_dim=16)
    cls = {"MoCoV3": partial(MoCoV3, predictor_hidden_dim=32), "VICReg": VICReg}[name]
    return cls(model.backbone, model.views, **heads, num_classes=10, optimizer=model.optimizer_factory)


@pytest.mark.parametrize("name", ["BYOL", "MoCoV3", "VICReg", "DINO"])
def test_two_process_ddp_keeps_ranks_identical(name, make_model, make_data, make_trainer, tmp_path):
    """Also for losses over the global batch, whose gather runs inside Lightning's process group."""
    model = _method(name, make_model)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    tr = make_trainer(
        strategy="ddp_spawn", devices=2, max_steps=3, callbacks=[SaveWeights(tmp_path)],
    )
    tr.fit(model, make_data(n=128, batch_size=16))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    conv = "backbone.model.conv1.weight"
    assert not torch.equal(r0[f"online.{conv}"], init[f"online.{conv}"])
    if name != "VICReg":
        assert not torch.equal(r0[f"target.module.{conv}"], init[f"target.module.{conv}"])
    for key in r0:
        if key.startswith(("online.", "target.", "predictor.", "centering.")) and "running_" not in key and "num_batches" not in key:
            assert torch.equal(r0[key], r1[key]), key
    if name == "DINO":  # the centre moved, and by the same global mean on both ranks
        assert r0["centering.center"].abs().sum() > 0


def _fresh_models(make_model):
    """One model of each method with its default schedule and masks, never called before pickling."""
    from byol.core.schedules import ConstantTau
    from byol.methods.tjepa import TJEPA
    from byol.models.audio_ntt import AudioNTT2020
    from byol.views.audio import BYOLAViews

    return {
        "BYOL": make_model(),
        "BYOL-A": make_model(backbone=AudioNTT2020(d=16, channels=4),
                             views=BYOLAViews(segment_seconds=0.25, mixup_memory=4), tau_schedule=ConstantTau()),
        "TJEPA": TJEPA(),
    }


def _tau(model):
    """The teacher's schedule; T-JEPA holds it until its networks (and teacher) are built for a table."""
    return model.target.tau if hasattr(model, "target") else model.tau_schedule


# Worked by hand at step 50 of 100: cosine 1 - 0.004 * (cos(pi / 2) + 1) / 2 = 0.998; constant 0.99;
# linear 0.996 + 0.004 * 0.5 = 0.998.
DEFAULT_TAU_AT_HALF = {"BYOL": 0.998, "BYOL-A": 0.99, "TJEPA": 0.998}


def test_fresh_models_with_default_arguments_pickle_and_keep_their_defaults(make_model):
    """What ddp_spawn does to a model: pickle it before anything has called its default arguments."""
    models = _fresh_models(make_model)
    for name, model in models.items():
        clone = pickle.loads(pickle.dumps(model))
        assert _tau(clone)(50, 100) == pytest.approx(DEFAULT_TAU_AT_HALF[name]), name
        assert type(_tau(clone)) is type(_tau(model))
    assert type(pickle.loads(pickle.dumps(models["TJEPA"])).masks) is type(models["TJEPA"].masks)
    again = _fresh_models(make_model)
    for name in models:  # a default is built per model, never one object shared between models
        assert _tau(again[name]) is not _tau(models[name]), name
