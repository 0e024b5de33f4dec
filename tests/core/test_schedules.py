import math

import pytest

from byol.core.schedules import ConstantTau, CosineTau, LinearTau, warmup_cosine


def test_cosine_tau_start_middle_end():
    tau = CosineTau(0.996)
    assert tau(0, 1000) == pytest.approx(0.996)
    # cos(pi/2) = 0: half-way between base and 1
    assert tau(500, 1000) == pytest.approx(0.998)
    assert tau(1000, 1000) == pytest.approx(1.0)
    # a quarter: 1 - 0.004 * (cos(pi/4) + 1) / 2
    assert tau(250, 1000) == pytest.approx(1 - 0.004 * (math.sqrt(0.5) + 1) / 2)


def test_linear_and_constant_tau():
    assert LinearTau(0.996, 1.0)(0, 10) == pytest.approx(0.996)
    assert LinearTau(0.996, 1.0)(5, 10) == pytest.approx(0.998)
    assert LinearTau(0.996, 1.0)(10, 10) == pytest.approx(1.0)
    assert ConstantTau(0.99)(7, 10) == 0.99


def test_warmup_then_cosine():
    total, warm = 110, 10
    assert warmup_cosine(0, total, warm) == pytest.approx(1 / 11)
    assert warmup_cosine(9, total, warm) == pytest.approx(10 / 11)
    assert warmup_cosine(10, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(60, total, warm) == pytest.approx(0.5)
    assert warmup_cosine(110, total, warm) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(110, total, warm, final_factor=0.1) == pytest.approx(0.1)
