"""Losses over the global batch: 2 processes (gloo) with B samples each give the loss and the gradients of
1 process with the same 2B samples, once DDP has averaged the gradients (done here by hand with all_reduce)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from byol.losses import CrossCosineLoss, CrossSigmoidLoss, barlow_twins_loss, mixed_sample_regularizer, symmetric_infonce, vicreg_loss

B, D_IN, D = 6, 7, 5


def losses(x1: torch.Tensor, x2: torch.Tensor, online: torch.nn.Linear, momentum: torch.nn.Linear) -> dict:
    """Each loss of the projections of two views' inputs; MoCo's keys come from a separate, frozen encoder. The
    mixed samples pair each sample with the next one of its own rank's half (``perm`` never crosses ranks)."""
    z1, z2 = online(x1), online(x2)
    with torch.no_grad():
        k1, k2 = momentum(x1), momentum(x2)
    perm = torch.cat([torch.arange(start, start + B).roll(-1) for start in range(0, len(x1), B)])
    alpha = 0.4
    z_mixed = online(alpha * x1 + (1 - alpha) * x2[perm])
    return {
        "infonce": symmetric_infonce(z1, z2, k1, k2, temperature=0.2),
        "barlow_twins": barlow_twins_loss(z1, z2),
        "vicreg": vicreg_loss(z1, z2),
        "mixed_barlow_twins": mixed_sample_regularizer(z1, z2, z_mixed, z2[perm], alpha),
        # BYOL's cross-similarity terms: the online projections stand in for predictions, pairs across ranks count
        "cross_cosine": CrossCosineLoss(threshold=0.3)(z1, k2) + CrossCosineLoss(threshold=0.3)(z2, k1),
        "cross_sigmoid": CrossSigmoidLoss(threshold=0.3, temperature=0.2)(z1, k2),
    }


def problem() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear, torch.nn.Linear]:
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(2 * B, D_IN, generator=g), torch.randn(2 * B, D_IN, generator=g)
    torch.manual_seed(0)
    return x1, x2, torch.nn.Linear(D_IN, D), torch.nn.Linear(D_IN, D)


def loss_and_grads(loss: torch.Tensor, online: torch.nn.Linear) -> tuple[torch.Tensor, ...]:
    online.zero_grad()
    loss.backward(retain_graph=True)
    return loss.detach(), online.weight.grad.clone(), online.bias.grad.clone()


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x1, x2, online, momentum = problem()
        mine = slice(rank * B, (rank + 1) * B)
        results = {}
        for name, loss in losses(x1[mine], x2[mine], online, momentum).items():
            values = list(loss_and_grads(loss, online))
            for v in values:  # what DDP does to the gradients; the loss is averaged the same way to compare
                dist.all_reduce(v)
                v /= world
            results[name] = values
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("global_batch")
    mp.spawn(_worker, args=(2, str(out / "pg"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize(
    "name", ["infonce", "barlow_twins", "vicreg", "mixed_barlow_twins", "cross_cosine", "cross_sigmoid"]
)
def test_two_ranks_give_the_loss_and_gradients_of_one_process_on_the_global_batch(two_ranks, name):
    x1, x2, online, momentum = problem()
    expected = loss_and_grads(losses(x1, x2, online, momentum)[name], online)
    for rank in two_ranks:
        for got, want in zip(rank[name], expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # a bias gradient is 0 up to rounding


def test_a_rank_alone_sees_a_different_loss(two_ranks):
    """The check above can fail: half of the batch gives another loss than the whole batch."""
    x1, x2, online, momentum = problem()
    half = losses(x1[:B], x2[:B], online, momentum)
    whole = losses(x1, x2, online, momentum)
    for name in whole:
        assert not torch.allclose(half[name], whole[name]), name
