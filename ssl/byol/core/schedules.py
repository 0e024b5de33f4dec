"""Learning-rate schedules as pure functions of the optimizer step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final_factor: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    Linear warm-up from ``1 / (warmup_steps + 1)`` to 1 over ``warmup_steps``,
    then a cosine from 1 down to ``final_factor`` at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LRSchedule:
    """Learning-rate multiplier of each optimizer step for a run of ``total_steps`` with ``warmup_steps`` of
    warm-up: picklable, for ``LambdaLR``. A method's ``lr_schedule`` builds one from the two lengths."""

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        raise NotImplementedError


class WarmupCosine(LRSchedule):
    """:func:`warmup_cosine`: linear warm-up, then a cosine to ``final_factor`` (1.0: constant after warm-up)."""

    def __init__(self, total_steps: int, warmup_steps: int, final_factor: float = 0.0) -> None:
        super().__init__(total_steps, warmup_steps)
        self.final_factor = final_factor

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps, self.final_factor)


class Constant:
    """Picklable ``LambdaLR`` multiplier that keeps the base learning rate."""

    def __call__(self, step: int) -> float:
        return 1.0


class TauSchedule:
    """EMA decay as a pure function of the optimizer step: ``tau = schedule(step, total_steps)``."""

    def __call__(self, step: int, total_steps: int) -> float:
        raise NotImplementedError


class CosineTau(TauSchedule):
    """BYOL's EMA decay: ``1 - (1 - base) * (cos(pi * k / K) + 1) / 2`` (Grill et al. 2020, Sec. 3.2).

    ``base`` at step 0, 1 at the last step; ``k`` is the optimizer step, ``K``
    the total number of optimizer steps.
    """

    def __init__(self, base: float = 0.996) -> None:
        self.base = base

    def __call__(self, step: int, total_steps: int) -> float:
        progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
        return 1.0 - (1.0 - self.base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class LinearTau(TauSchedule):
    """EMA decay rising linearly from ``base`` to ``final`` over training (I-JEPA, T-JEPA)."""

    def __init__(self, base: float = 0.996, final: float = 1.0) -> None:
        self.base, self.final = base, final

    def __call__(self, step: int, total_steps: int) -> float:
        progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
        return self.base + (self.final - self.base) * progress


class ConstantTau(TauSchedule):
    """Fixed EMA decay (BYOL-A uses 0.99)."""

    def __init__(self, value: float = 0.99) -> None:
        self.value = value

    def __call__(self, step: int, total_steps: int) -> float:
        return self.value
