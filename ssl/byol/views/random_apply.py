"""Random per-sample application of an augmentation whose cost is proportional to the samples that draw it.

Drawing a Bernoulli(p) decision per sample and keeping ``torch.where(decision, op(x), x)`` computes ``op`` for
the whole batch and throws a ``1 - p`` share of the work away (90% for BYOL's second-view blur). Selecting the
chosen samples by a boolean mask would read the mask back from the device (``nonzero``), which stalls a GPU.

The same distribution, without either cost: the *number* of chosen samples ``n ~ Binomial(B, p)`` is drawn on the
host (the CPU generator, seeded with the global seed like every other draw of the views), then *which* ``n``
samples is a uniformly random subset drawn on the device (the first ``n`` of a random permutation). A binomial
count followed by a uniform subset of that size is exactly ``B`` independent Bernoulli(p) decisions. ``op`` then
runs on the ``(n, ...)`` chosen samples only, and they are copied back in place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def sample_count(batch: int, p: float) -> int:
    """``Binomial(batch, p)`` drawn on the host from torch's CPU generator: how many samples an op with
    probability ``p`` applies to. Never reads a device."""
    if p <= 0:
        return 0
    if p >= 1:
        return batch
    return int((torch.rand(batch) < p).sum().tolist())  # a CPU tensor: no device involved


def apply_with_probability(x: Tensor, p: float, op: Callable[[Tensor], Tensor]) -> Tensor:
    """``op`` applied to each sample of ``x`` ``(B, ...)`` independently with probability ``p``, computed only for
    the samples that draw it.

    Args:
        x: a batch ``(B, ...)``.
        p: per-sample probability.
        op: maps ``(n, ...)`` samples to ``(n, ...)``, drawing its own per-sample parameters for the ``n``.

    Returns:
        ``(B, ...)``: ``op``'s output for the chosen samples, ``x`` elsewhere (``x`` itself when none is chosen).
    """
    n = sample_count(x.shape[0], p)
    if n == 0:
        return x
    if n == x.shape[0]:
        return op(x)
    chosen = torch.randperm(x.shape[0], device=x.device)[:n]  # uniform subset of size n, made on the device
    return x.index_copy(0, chosen, op(x.index_select(0, chosen)))
