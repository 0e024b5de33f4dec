"""The resumable loader: deterministic order per epoch, skipping exactly what a checkpointed epoch delivered."""

import torch
from torch.utils.data import TensorDataset

from byol.data.resumable import ResumableDataLoader


def _epoch(loader: ResumableDataLoader, epoch: int) -> list[int]:
    loader.sampler.set_epoch(epoch)
    return [int(i) for (batch,) in loader for i in batch]


def _loader() -> ResumableDataLoader:
    return ResumableDataLoader(TensorDataset(torch.arange(20)), batch_size=4, seed=7)


def test_order_is_a_function_of_seed_and_epoch():
    a, b = _loader(), _loader()
    assert _epoch(a, 3) == _epoch(b, 3)
    assert _epoch(a, 3) != _epoch(a, 4)
    assert sorted(_epoch(a, 5)) == list(range(20))


def test_mid_epoch_state_resumes_with_the_remaining_batches():
    full = _epoch(_loader(), 1)
    first = _loader()
    first.sampler.set_epoch(1)
    it = iter(first)
    next(it), next(it)  # two batches delivered, then the "crash"
    state = first.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    resumed = _loader()
    resumed.load_state_dict(state)
    assert _epoch(resumed, 1) == full[8:]
    assert resumed.state_dict() == {"epoch": 1, "batches": 5}


def test_end_of_epoch_state_does_not_skip_the_next_epoch():
    resumed = _loader()
    resumed.load_state_dict({"epoch": 1, "batches": 5})  # epoch 1 finished
    assert _epoch(resumed, 2) == _epoch(_loader(), 2)
