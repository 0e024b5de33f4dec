"""Array-backed datasets held on the device: the worker loader's batches, resumable, sharded as DistributedSampler."""

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DistributedSampler, Subset

from byol.data import DataModule, DeviceBatches, Digits, ImageFolder
from byol.data.image_datasets import _ArrayImages
from byol.data.resumable import ResumableDataLoader


class Ramp(_ArrayImages):
    """``n`` (1, 2, 2) images whose pixels and label are the sample's index: batches name their samples."""

    def __init__(self, n: int = 40) -> None:
        super().__init__()
        self.classes, self.targets = [], list(range(n))

    def _load_parts(self) -> list[np.ndarray]:
        n = len(self.targets)
        return [np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 2, 2))]


def _digits() -> Subset:
    return Subset(Digits(split="train", size=12), range(10, 110))  # resized on the device path too


def _epoch(loader, epoch: int) -> list[list[torch.Tensor]]:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def _assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (images_a, labels_a), (images_b, labels_b) in zip(a, b):
        assert images_a.dtype == images_b.dtype == torch.uint8 and labels_a.dtype == labels_b.dtype == torch.int64
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("seed", [3, 11])
def test_the_worker_loaders_samples_in_its_order(seed, drop_last):
    data = _digits()
    device = DeviceBatches(data, batch_size=16, seed=seed, drop_last=drop_last)
    workers = ResumableDataLoader(data, batch_size=16, seed=seed, drop_last=drop_last)
    assert len(device) == len(workers) == (6 if drop_last else 7)
    for epoch in (0, 1):
        _assert_same_batches(_epoch(device, epoch), _epoch(workers, epoch))
    assert not torch.equal(_epoch(device, 0)[0][1], _epoch(device, 1)[0][1])


def _module(**kwargs) -> DataModule:
    return DataModule(_digits(), batch_size=16, num_workers=0, **kwargs)


@pytest.mark.parametrize("first_on_device", [True, False], ids=["device-state", "worker-state"])
def test_resume_mid_epoch_through_the_datamodule_state(first_on_device):
    """The state after k batches, loaded into a fresh module, gives the rest of the epoch; the worker loader's
    state (same contract) resumes the device loader too."""
    torch.manual_seed(5)
    full = _epoch(_module(on_device=True).train_dataloader(), 2)
    first = _module(on_device=first_on_device)
    loader = first.train_dataloader()
    loader.sampler.set_epoch(2)
    batches = iter(loader)
    next(batches), next(batches), next(batches)  # then the "crash"
    state = first.state_dict()
    assert state == {"train_loader": {"epoch": 2, "batches": 3}}

    resumed = _module(on_device=True)
    resumed.load_state_dict(state)
    loader = resumed.train_dataloader()
    assert isinstance(loader, DeviceBatches)
    _assert_same_batches(_epoch(loader, 2), full[3:])
    assert resumed.state_dict() == {"train_loader": {"epoch": 2, "batches": 6}}
    _assert_same_batches(_epoch(loader, 3), _epoch(_module(on_device=True).train_dataloader(), 3))


def test_batches_read_nothing_back_from_the_device():
    """After an epoch's indices are copied, batches are slices and index_select: no host read, no host copy."""
    aten = torch.ops.aten
    reads = {aten._local_scalar_dense.default, aten.nonzero.default, aten.lift_fresh.default}

    class Record(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in reads:
                self.seen.append(func)
            return func(*args, **(kwargs or {}))

    batches = iter(DeviceBatches(Ramp(), batch_size=4))
    next(batches)
    with Record() as record:
        rest = list(batches)
    assert len(rest) == 9 and record.seen == []


def test_a_dataset_that_is_not_array_backed_is_refused(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(TypeError, match="on_device=True .* array-backed .* got ImageFolder"):
        DataModule(ImageFolder(tmp_path, size=8), batch_size=1, on_device=True)
    with pytest.raises(TypeError, match="got Subset"):  # the message names what was passed
        DeviceBatches(Subset(ImageFolder(tmp_path, size=8), [0]), batch_size=1)


class RecordBatches(L.LightningModule):
    """Saves, per rank, the labels (here: sample indices) of every training batch and the loader's seed."""

    def __init__(self, out_dir) -> None:
        super().__init__()
        self.out_dir, self.weight, self.seen = out_dir, torch.nn.Parameter(torch.zeros(())), []

    def training_step(self, batch, batch_idx):
        images, labels = batch
        assert images.device == self.device and images.dtype == torch.uint8
        self.seen.append((self.current_epoch, labels.tolist()))
        return self.weight * images.float().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_end(self):
        loader = self.trainer.train_dataloader
        torch.save({"seen": self.seen, "seed": loader.seed, "type": type(loader).__name__},
                   self.out_dir / f"rank{self.global_rank}.pt")


def test_two_process_ddp_gets_the_distributed_sampler_shards(make_trainer, tmp_path):
    L.seed_everything(17, verbose=False)
    data = DataModule(Ramp(40), batch_size=4, num_workers=0, on_device=True)
    make_trainer(strategy="ddp_spawn", devices=2, max_epochs=2).fit(RecordBatches(tmp_path), data)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["type"] == "DeviceBatches" and ranks[0]["seed"] == ranks[1]["seed"] == 17
    for epoch in (0, 1):
        shards = []
        for rank, saved in enumerate(ranks):
            got = [labels for e, labels in saved["seen"] if e == epoch]
            sampler = DistributedSampler(Ramp(40), num_replicas=2, rank=rank, shuffle=True, seed=17)
            sampler.set_epoch(epoch)
            expected = list(sampler)
            assert got == [expected[i : i + 4] for i in range(0, 20, 4)]
            shards.append(set(expected))
        assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(40))


def test_one_training_step_of_byol_with_the_data_on_the_device(make_model, make_trainer):
    model = make_model()
    data = DataModule(Subset(Digits(split="train", size=8), range(64)), batch_size=16, num_workers=0, on_device=True)
    trainer = make_trainer(max_steps=1)
    trainer.fit(model, data)
    assert trainer.global_step == 1 and isinstance(trainer.train_dataloader, DeviceBatches)
    assert data.state_dict() == {"train_loader": {"epoch": 0, "batches": 1}}
