"""Ops computed only for the samples that draw them: the decisions keep the distribution of independent per-sample
Bernoulli(p) draws, ``op`` sees exactly the chosen samples, and with every sample chosen the ops give what the
earlier compute-everything-then-``torch.where`` path gave for the same seed."""

import math
import pickle

import pytest
import torch

from byol.views.color_jitter import RandomColorJitter, color_jitter, grayscale
from byol.views.image import _RandomGaussianBlur, _RandomGrayscale, _RandomHorizontalFlip, _RandomSolarize, gaussian_blur
from byol.views.random_apply import apply_with_probability, sample_count


def test_counts_are_binomial():
    torch.manual_seed(0)
    b, p, n = 16, 0.3, 4000
    counts = torch.tensor([sample_count(b, p) for _ in range(n)], dtype=torch.float64)
    mean, var = b * p, b * p * (1 - p)
    assert abs(counts.mean() - mean) < 4 * math.sqrt(var / n)
    assert abs(counts.var() / var - 1) < 0.1  # the sample variance of 4000 draws is within ~2% (1 sd)
    assert sample_count(b, 0.0) == 0 and sample_count(b, 1.0) == b


def test_decisions_are_independent_per_sample_with_probability_p_and_op_sees_only_the_chosen():
    torch.manual_seed(0)
    b, p, n = 8, 0.25, 4000
    seen = []

    def op(s):
        seen.append(len(s))
        return s + 1

    chosen = torch.stack([apply_with_probability(torch.zeros(b), p, op) for _ in range(n)])  # (n, b) of 0/1
    rate = chosen.mean(0)
    assert (rate - p).abs().max() < 4 * math.sqrt(p * (1 - p) / n)  # every position equally likely
    both = (chosen[:, 0] * chosen[:, 1]).mean()
    assert abs(both - p * p) < 4 * math.sqrt(p * p * (1 - p * p) / n)  # pairs independent: P(both) = p^2
    assert sum(seen) == chosen.sum()  # the work done is the work kept
    assert len(seen) < n  # batches where nothing is chosen never call op


def test_nothing_or_everything():
    x = torch.rand(5, 3)
    assert apply_with_probability(x, 0.0, lambda s: pytest.fail("called")) is x
    torch.testing.assert_close(apply_with_probability(x, 1.0, lambda s: 2 * s), 2 * x)


@pytest.mark.parametrize(
    "module, reference",
    [
        (_RandomSolarize(0.5), lambda s: torch.where(s >= 0.5, 1 - s, s)),
        (_RandomGrayscale(0.5), lambda s: grayscale(s).expand_as(s)),
        (_RandomHorizontalFlip(0.5), lambda s: s.flip(-1)),
    ],
    ids=["solarize", "grayscale", "flip"],
)
def test_each_sample_is_either_kept_or_the_op_of_itself(module, reference):
    torch.manual_seed(1)
    x = torch.rand(64, 3, 6, 6)
    y = module(x)
    kept = (y == x).flatten(1).all(1)
    changed = ~kept
    assert 10 < changed.sum() < 54  # about half of 64
    torch.testing.assert_close(y[changed], reference(x[changed]))


def old_jitter(module: RandomColorJitter, x: torch.Tensor) -> torch.Tensor:
    """The compute-everything path: factors for every sample, one order, then a Bernoulli mask."""
    u = torch.rand(x.shape[0], 4)
    factors = module.low + (module.high - module.low) * u
    active = [i for i in range(4) if module.strengths[i] > 0]
    order = [active[i] for i in torch.randperm(len(active)).tolist()]
    apply = torch.rand(x.shape[0], 1, 1, 1) < module.p
    return torch.where(apply, color_jitter(x, factors, order), x)


def old_blur(module: _RandomGaussianBlur, x: torch.Tensor) -> torch.Tensor:
    low, high = module.sigma
    sigma = low + (high - low) * torch.rand(x.shape[0])
    apply = torch.rand(x.shape[0], 1, 1, 1) < module.p
    return torch.where(apply, gaussian_blur(x, sigma, module.kernel_size), x)


@pytest.mark.parametrize(
    "module, old",
    [(RandomColorJitter(0.4, 0.4, 0.2, 0.1, p=1.0), old_jitter), (_RandomGaussianBlur(5, (0.1, 2.0), p=1.0), old_blur)],
    ids=["jitter", "blur"],
)
def test_with_every_sample_chosen_the_output_is_the_old_paths_for_the_same_seed(module, old):
    x = torch.rand(6, 3, 12, 12)
    torch.manual_seed(3)
    expected = old(module, x)
    torch.manual_seed(3)
    torch.testing.assert_close(module(x), expected)
    assert not torch.equal(expected, x)


def test_a_partly_applied_blur_blurs_the_chosen_samples_with_sigmas_in_range():
    torch.manual_seed(2)
    x = torch.rand(32, 1, 9, 9)
    blur = _RandomGaussianBlur(5, (0.5, 1.0), p=0.3)
    y = blur(x)
    changed = ~(y == x).flatten(1).all(1)
    assert 0 < changed.sum() < 32
    weak, strong = gaussian_blur(x, torch.full((32,), 0.5), 5), gaussian_blur(x, torch.full((32,), 1.0), 5)
    # a blur's effect on these images grows with sigma: each chosen output lies between the weakest and strongest
    change = (y - x).flatten(1).norm(dim=1)
    low, high = ((b - x).flatten(1).norm(dim=1) for b in (weak, strong))
    assert torch.all(change[changed] >= low[changed] - 1e-5) and torch.all(change[changed] <= high[changed] + 1e-5)


def test_compiled_jitter_gives_the_eager_output_and_pickles():
    """Brightness and hue only, so that two adjustments compile (each a few seconds on a CPU)."""
    eager = RandomColorJitter(0.4, 0.0, 0.0, 0.1, p=0.8)
    compiled = RandomColorJitter(0.4, 0.0, 0.0, 0.1, p=0.8, compile=True)
    x = torch.rand(8, 3, 16, 16)
    for seed in (0, 5, 9):  # different numbers of jittered samples: the compiled code takes any
        torch.manual_seed(seed)
        expected = eager(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(compiled(x), expected, atol=1e-5, rtol=0)
    assert compiled._compiled is not None
    assert pickle.loads(pickle.dumps(compiled))._compiled is None
