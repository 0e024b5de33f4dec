"""The training hot path never reads a tensor's value on the host.

On a GPU every such read (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``, boolean-mask indexing) waits for all
queued kernels, so the host can no longer run ahead of the device. Those reads all go through two ATen ops,
``_local_scalar_dense`` and ``nonzero``, which a dispatch mode sees on any device: these tests run on the CPU.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from byol.core import ema_update
from byol.views import BYOLAViews, BYOLImageViews, GreyImageViews, SmallImageViews
from byol.views.audio import BYOLAv1Views

HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default}


class RecordHostReads(TorchDispatchMode):
    """Records every op that brings a tensor's value to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))


def host_reads(fn) -> list[str]:
    fn()  # a first call may set things up (lazy state) outside the measured call
    with RecordHostReads() as recorder:
        fn()
    return recorder.reads


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
def test_image_views_read_nothing_back(views, images):
    assert host_reads(lambda: views(images)) == []


def test_byol_a_views_read_nothing_back():
    v2 = BYOLAViews(norm_stats=(-8.0, 4.0))
    v1 = BYOLAv1Views()  # running pre-normalisation, updated by every batch of the first epochs
    waves = 0.1 * torch.randn(4, v2.segment_samples, generator=torch.Generator().manual_seed(0))
    assert host_reads(lambda: v2(waves)) == []
    assert host_reads(lambda: v1(waves, epoch=0)) == []


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_a_byol_training_step_reads_nothing_back(make_model, monkeypatch):
    """Views, both networks, loss, probe, backward, optimizer step and EMA. The loss check reads the flag it keeps
    on the device only on logging steps (and at once on a CPU, where reading costs nothing): switched off here."""
    model = make_model()
    monkeypatch.setattr(model, "raise_if_nonfinite", lambda: None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.tensor([3, -1, 5, -1, 0, 1, -1, 2])  # some unlabeled: the probe masks them without indexing

    def step() -> None:
        loss = model.training_step(model.training_views((uint8(8, 1, 8), labels)), 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(model.target, model.online, 0.99)

    assert host_reads(step) == []
