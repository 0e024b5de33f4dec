"""DINO's teacher targets over the global batch: 2 processes (gloo) with B samples each give the centre, the
Sinkhorn-Knopp targets, and (after DDP's gradient averaging, done here by hand) the losses and gradients of 1 process
with the same 2B samples."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from byol.losses import DINOCentering, SinkhornKnoppCentering, dino_loss, ibot_patch_loss

B, S, G, N, D_IN, K = 3, 4, 2, 5, 6, 7
TEMP = 0.3


def problem() -> dict:
    """The global batch, crop-major per crop: ``(crops, 2B, ...)``; a rank takes its B samples of every crop."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    # an image without masked patches; the ranks hold unequal counts of masked patches (5 and 3)
    mask = torch.tensor([[0, 0, 0, 0, 0], [1, 0, 1, 1, 0], [0, 1, 0, 0, 1],
                         [0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    return {
        "teacher_logits": 2 * torch.randn(G, 2 * B, K, generator=g),
        "student_inputs": torch.randn(S, 2 * B, D_IN, generator=g),
        "patch_logits": 2 * torch.randn(2 * B, N, K, generator=g),
        "patch_inputs": torch.randn(2 * B, N, D_IN, generator=g),
        "mask": mask,
        "student": torch.nn.Linear(D_IN, K),
    }


def results(p: dict, samples: slice) -> dict:
    """Everything compared, for the samples ``samples`` of the global batch (one rank's, or all of them)."""
    teacher_logits = p["teacher_logits"][:, samples].flatten(0, 1)  # (G * b, K), crop-major
    student_inputs = p["student_inputs"][:, samples].flatten(0, 1)  # (S * b, D_IN)
    patch_logits, patch_inputs, mask = p["patch_logits"][samples], p["patch_inputs"][samples], p["mask"][samples]
    student, out = p["student"], {}

    center = DINOCentering(K)
    center.center.copy_(torch.linspace(-1, 1, K))
    centered = center(teacher_logits, TEMP)
    center.update(teacher_logits)
    out["center"] = center.center.clone()
    patch_center = DINOCentering(K)
    patch_center.update(patch_logits, mask)  # the mean of the masked patches of every rank
    out["patch_center"] = patch_center.center.clone()

    sk = SinkhornKnoppCentering()
    out["sinkhorn"] = sk(teacher_logits, TEMP).view(G, -1, K)
    out["sinkhorn_patches"] = sk(patch_logits, TEMP, mask)

    for name, targets in (("loss_centered", centered), ("loss_sinkhorn", out["sinkhorn"].flatten(0, 1))):
        out[name] = loss_and_grads(dino_loss(student(student_inputs), targets, S, G), student)
    ibot = ibot_patch_loss(student(patch_inputs), out["sinkhorn_patches"], mask)
    out["loss_ibot"] = loss_and_grads(ibot, student)
    return out


def loss_and_grads(loss: torch.Tensor, module: torch.nn.Linear) -> list[torch.Tensor]:
    module.zero_grad()
    loss.backward()
    return [loss.detach(), module.weight.grad.clone(), module.bias.grad.clone()]


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = results(problem(), slice(rank * B, (rank + 1) * B))
        for name, values in out.items():
            if name.startswith("loss"):
                for v in values:  # what DDP does to the gradients; the loss is averaged the same way to compare
                    dist.all_reduce(v)
                    v /= world
        torch.save(out, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("dino_global_batch")
    mp.spawn(_worker, args=(2, str(out / "pg"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.fixture(scope="module")
def one_process() -> dict:
    return results(problem(), slice(None))


@pytest.mark.parametrize("name", ["center", "patch_center"])
def test_every_rank_holds_the_centre_of_the_global_batch(two_ranks, one_process, name):
    for rank in two_ranks:
        torch.testing.assert_close(rank[name], one_process[name])


@pytest.mark.parametrize("name", ["sinkhorn", "sinkhorn_patches"])
def test_sinkhorn_knopp_targets_are_those_of_the_global_batch(two_ranks, one_process, name):
    for r, rank in enumerate(two_ranks):
        mine = slice(r * B, (r + 1) * B)
        expected = one_process[name][:, mine] if name == "sinkhorn" else one_process[name][mine]
        torch.testing.assert_close(rank[name], expected)


@pytest.mark.parametrize("name", ["loss_centered", "loss_sinkhorn", "loss_ibot"])
def test_two_ranks_give_the_loss_and_gradients_of_one_process(two_ranks, one_process, name):
    for rank in two_ranks:
        for got, want in zip(rank[name], one_process[name]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_rank_alone_sees_different_targets(one_process):
    """The checks above can fail: half of the batch has another centre and other Sinkhorn-Knopp targets."""
    half = results(problem(), slice(0, B))
    for name in ("center", "patch_center"):
        assert not torch.allclose(half[name], one_process[name]), name
    assert not torch.allclose(half["sinkhorn"], one_process["sinkhorn"][:, :B])
    assert not torch.allclose(half["sinkhorn_patches"], one_process["sinkhorn_patches"][:B])
