"""The training hot path never makes the host wait for the device.

On a GPU every read of a tensor's value (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``, boolean-mask
indexing) waits for all queued kernels, and so does a host value made into a device tensor (``torch.tensor(x)``,
``t.new_tensor(x)``: a blocking copy). They go through three ATen ops, ``_local_scalar_dense``, ``nonzero`` and
``lift_fresh``, which a dispatch mode sees on any device: these tests run on the CPU.
"""

import traceback
from functools import partial

import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from timm.optim import Lars
from torch.utils._python_dispatch import TorchDispatchMode

from byol import TimmBackbone
from byol.core import ema_update
from byol.views import BYOLAViews, BYOLImageViews, GreyImageViews, SmallImageViews
from byol.views.audio import BYOLAv1Views

HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default}


class RecordHostTraffic(TorchDispatchMode):
    """Host reads, and host values made into tensors (``torch.tensor(x)``, ``t.new_tensor(x)``: on a GPU a blocking
    copy that waits for the device), outside the data loader, which works on the CPU by design."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS or func is torch.ops.aten.lift_fresh.default:
            stack = traceback.extract_stack()
            if not any("torch/utils/data/" in frame.filename for frame in stack):
                caller = next(f for f in reversed(stack[:-1]) if "site-packages/torch/" not in f.filename)
                self.events.append(f"{func} at {caller.filename}:{caller.lineno}")
        return func(*args, **(kwargs or {}))


def host_traffic(fn) -> list[str]:
    fn()  # a first call may set things up (lazy state) outside the measured call
    with RecordHostTraffic() as recorder:
        fn()
    return recorder.events


def uint8(b: int, c: int, size: int) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "views, images",
    [
        (BYOLImageViews(64), uint8(4, 3, 72)),  # every op of the paper's recipe, blur and solarize included
        (SmallImageViews(), uint8(4, 3, 32)),
        (GreyImageViews(size=16), uint8(4, 1, 20)),
    ],
    ids=["imagenet-recipe", "cifar", "grey"],
)
def test_image_views_read_nothing_back(views, images, monkeypatch):
    assert host_traffic(lambda: views(images)) == []
    # the accelerators' crop path (batched weight matrices), which a CPU run would not take
    import byol.views.image
    from byol.views.resized_crop import resize_crops_batched

    monkeypatch.setattr(byol.views.image, "resize_crops", resize_crops_batched)
    assert host_traffic(lambda: views(images)) == []


def test_byol_a_views_read_nothing_back():
    v2 = BYOLAViews(norm_stats=(-8.0, 4.0))
    v1 = BYOLAv1Views()  # running pre-normalisation, updated by every batch of the first epochs
    waves = 0.1 * torch.randn(4, v2.segment_samples, generator=torch.Generator().manual_seed(0))
    assert host_traffic(lambda: v2(waves)) == []
    assert host_traffic(lambda: v1(waves, epoch=0)) == []


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize(
    "optimizer_class",
    # timm's LARS as the recipes set it (weight decay, so the trust ratio runs), per parameter (timm's CPU default)
    # and multi-tensor (its default on CUDA: one set of ops for all parameters)
    [torch.optim.SGD,
     *(partial(Lars, weight_decay=1e-5, trust_coeff=0.02, trust_clip=True, foreach=f) for f in (False, True))],
    ids=["sgd", "lars", "lars-foreach"],
)
def test_a_byol_training_step_reads_nothing_back(make_model, monkeypatch, optimizer_class):
    """Views, both networks, loss, probe, backward, optimizer step (SGD, or LARS as the recipes use) and EMA. The
    loss check reads the flag it keeps on the device only on logging steps (and at once on a CPU, where reading
    costs nothing): switched off here."""
    model = make_model()
    monkeypatch.setattr(model, "raise_if_nonfinite", lambda: None)
    optimizer = optimizer_class(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.tensor([3, -1, 5, -1, 0, 1, -1, 2])  # some unlabeled: the probe masks them without indexing

    def step() -> None:
        loss = model.training_step(model.training_views((uint8(8, 1, 8), labels)), 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(model.target, model.online, 0.99)

    assert host_traffic(step) == []


def fit_traffic(model, data, steps_per_epoch: int) -> list[str]:
    import lightning as L

    model.raise_if_nonfinite = lambda: None  # read at once on a CPU only (see check_finite)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, log_every_n_steps=10_000, callbacks=[RichProgressBar()])
    with RecordHostTraffic() as recorder:
        trainer.fit(model, data)
    assert trainer.global_step == steps_per_epoch
    return recorder.events


def test_a_lightning_fit_talks_to_the_host_per_epoch_not_per_step(make_model, make_data):
    """Outside logging steps a training step sends nothing to the host and copies nothing from it, also through
    Lightning's logging and the progress bar: twice the steps in an epoch give exactly the same host traffic."""
    short = fit_traffic(make_model(), make_data(n=128, batch_size=16), 8)
    long = fit_traffic(make_model(), make_data(n=256, batch_size=16), 16)
    assert sorted(long) == sorted(short)


def test_jepa_mask_samplers_read_nothing_back():
    """The masks are drawn on the host from CPU tensors: nothing recorded, also when rows short of context are
    redrawn (a 4x4 grid, and 4 blocks of 3x3 on 6x6 that must leave 16 patches) and the context is capped."""
    from byol.views import MultiBlockMasks, TimeFrequencyMasks

    crowded = MultiBlockMasks(target_scale=(0.25, 0.25), target_aspect=(1, 1), context_scale=(1, 1), min_keep=16)
    for sampler, grid in [
        (MultiBlockMasks(), (14, 14)),
        (MultiBlockMasks(), (4, 4)),
        (crowded, (6, 6)),
        (TimeFrequencyMasks(), (4, 6)),
        (TimeFrequencyMasks(context_ratio=0.3), (5, 38)),
    ]:
        assert host_traffic(lambda s=sampler, g=grid: s(32, g, "cpu")) == [], (sampler, grid)


def test_dino_multi_crop_image_views_read_nothing_back():
    """Every op of DINO's recipe (blur on both global crops and the local ones, solarize on global crop 2), the
    presets, and no local crops."""
    from byol.views import DINOGreyImageViews, DINOImageViews, DINOSmallImageViews

    for views, images in [
        (DINOImageViews(64, 32, num_local_crops=3), uint8(4, 3, 72)),
        (DINOSmallImageViews(num_local_crops=2), uint8(4, 3, 32)),
        (DINOGreyImageViews(num_local_crops=2), uint8(4, 1, 20)),
        (DINOImageViews(32, 16, num_local_crops=0), uint8(2, 3, 40)),
    ]:
        assert host_traffic(lambda v=views, x=images: v(x)) == [], views


def test_dino_multi_crop_audio_views_read_nothing_back():
    """Dataset and running pre-normalisation; the second call mixes with the batch the first one remembered."""
    from byol.views import DINOAudioViews

    dataset = DINOAudioViews(norm_stats=(-8.0, 4.0), num_local_crops=2)
    running = DINOAudioViews(pre_norm="running", num_local_crops=2)
    global_only = DINOAudioViews(norm_stats=(-8.0, 4.0), num_local_crops=0)
    waves = 0.1 * torch.randn(4, dataset.segment_samples, generator=torch.Generator().manual_seed(0))
    assert host_traffic(lambda: dataset(waves)) == []
    assert host_traffic(lambda: running(waves, epoch=0)) == []
    assert host_traffic(lambda: global_only(waves)) == []


def _step_traffic(model, batch: tuple) -> list[str]:
    """Views, loss, probe, backward, SGD step and every teacher's EMA update of one training step (Adam's step
    count is a CPU tensor that it reads on the host, which the recorder cannot tell from a device read)."""
    model.raise_if_nonfinite = lambda: None  # read at once on a CPU only (see check_finite)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = model.training_step(model.training_views(batch), 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for _, teacher in model.teachers():
            teacher.update(0, 10)

    return host_traffic(step)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_a_dino_step_reads_nothing_back_with_every_dinov2_option():
    """Multi-crop views, student and teacher, the centred targets (running centre and Sinkhorn-Knopp), the iBOT
    patch loss on gathered masked patches and KoLeo."""
    from byol import DINO
    from byol.core import DINOHead
    from byol.losses import SinkhornKnoppCentering
    from byol.views import DINOGreyImageViews
    from byol.views.patch_masks import RandomPatchMasks

    vit = {"img_size": 8, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2, "dynamic_img_size": True}
    for centering in (None, lambda k: SinkhornKnoppCentering()):
        torch.manual_seed(0)
        model = DINO(TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs=vit),
                     DINOGreyImageViews(global_size=8, local_size=4, num_local_crops=2),
                     head=partial(DINOHead, out_dim=16, hidden_dim=16, bottleneck_dim=8), koleo_weight=0.1,
                     patch_masks=RandomPatchMasks(probability=0.5), num_classes=10,
                     **({} if centering is None else {"centering": centering}))
        assert _step_traffic(model, (uint8(8, 1, 12), torch.tensor([3, -1, 5, -1, 0, 1, -1, 2]))) == []


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_a_jepa_step_reads_nothing_back():
    """I-JEPA's masks and view, the context encoder on kept patches, the predictor, the target tokens and EMA."""
    from byol.methods.jepa import JEPA
    from byol.models import JEPAPredictor
    from byol.views.jepa import JEPAImageViews
    from byol.views.jepa_masks import MultiBlockMasks

    torch.manual_seed(0)
    vit = {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2, "class_token": False,
           "global_pool": "avg", "fc_norm": False}
    model = JEPA(TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs=vit),
                 JEPAImageViews(16, mean=(0.5,), std=(0.5,)), MultiBlockMasks(min_keep=2),
                 predictor=partial(JEPAPredictor, dim=8, depth=1, heads=2, ffn_dim=16), num_classes=10)
    assert _step_traffic(model, (uint8(8, 1, 20), torch.tensor([3, -1, 5, -1, 0, 1, -1, 2]))) == []
