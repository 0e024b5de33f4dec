"""The one gradient-correct all-gather that every loss over the global batch uses."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the default group; 1 outside ``torch.distributed``."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group; 0 outside ``torch.distributed``."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _Gather(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums every rank's gradient of this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.batch = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over every rank, without a gradient (counts and normalisers); ``x`` when ``W == 1``."""
    if world_size() == 1:
        return x
    x = x.detach().clone()
    dist.all_reduce(x)
    return x


def gather(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` on each of ``W`` ranks -> ``(W * B, ...)``, rank 0's rows first; ``x`` itself when ``W == 1``.

    Every rank must pass the same ``B``. Gradients flow back to every rank's
    rows: the backward all-reduces (sums) the gradient of the gathered tensor,
    so when the objective is the mean over ranks of what each rank computes
    (DDP averages the parameter gradients), the gradient is that of the same
    objective computed by one process on the whole global batch.
    """
    if world_size() == 1:
        return x
    return _Gather.apply(x)
