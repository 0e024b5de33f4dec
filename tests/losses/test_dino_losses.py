"""DINO's and DINOv2's objectives against hand-computed values, direct loops and NumPy (one process; the global
batch is checked by test_dino_global_batch.py)."""

import io
import math
import pickle

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from byol.losses import (
    DINOCentering, SinkhornKnoppCentering, TeacherCentering, TeacherTemperature, dino_loss, ibot_patch_loss, koleo_loss,
)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()


def probs(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.softmax(2 * random(*shape, seed=seed), dim=-1)


# ---- dino_loss


def loop_dino_loss(student: np.ndarray, teacher: np.ndarray, s: int, g: int, temp: float) -> float:
    """DINO's double loop over (teacher crop, student crop) pairs, each a batch mean, one sample at a time."""
    b = len(student) // s
    total, pairs = 0.0, 0
    for t in range(g):
        for v in range(s):
            if v == t:
                continue
            ce = [-(teacher[t * b + i] * log_softmax(student[v * b + i] / temp)).sum() for i in range(b)]
            total += sum(ce) / b
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("s, g", [(4, 2), (3, 1), (2, 2), (5, 3)])
def test_dino_loss_against_a_loop_over_crop_pairs(s, g):
    b, k = 3, 5
    student, teacher = random(s * b, k), probs(g * b, k)
    expected = loop_dino_loss(student.double().numpy(), teacher.double().numpy(), s, g, temp=0.1)
    assert dino_loss(student, teacher, s, g).item() == pytest.approx(expected, rel=1e-5)
    expected = loop_dino_loss(student.double().numpy(), teacher.double().numpy(), s, g, temp=0.3)
    assert dino_loss(student, teacher, s, g, student_temp=0.3).item() == pytest.approx(expected, rel=1e-5)


def test_dino_loss_by_hand():
    # uniform teacher, uniform student over K = 2: every pair costs log 2
    assert dino_loss(torch.zeros(6, 2), torch.full((4, 2), 0.5), 3, 2).item() == pytest.approx(math.log(2))
    # B = 1, S = G = 2: student crop 0 has softmax (3/4, 1/4) at temperature 0.1, crop 1 (1/2, 1/2); teacher crop
    # 0 is (1, 0), crop 1 is (0, 1). Pairs (t0, s1): -log 1/2; (t1, s0): -log 1/4. Mean: 1.5 log 2.
    student = torch.tensor([[0.1 * math.log(3), 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert dino_loss(student, teacher, 2, 2).item() == pytest.approx(1.5 * math.log(2))


def test_dino_loss_teacher_gets_no_gradient():
    student = random(4 * 3, 5).requires_grad_()
    teacher_logits = random(2 * 3, 5, seed=2).requires_grad_()
    dino_loss(student, torch.softmax(teacher_logits, -1), 4, 2).backward()
    assert teacher_logits.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "student_shape, teacher_shape, s, g",
    [((8, 5), (4, 4), 4, 2), ((8, 5), (6, 5), 4, 2), ((7, 5), (4, 5), 4, 2), ((8, 5), (4, 5), 1, 1),
     ((8, 5), (12, 5), 2, 3)],
)
def test_dino_loss_rejects_inconsistent_shapes(student_shape, teacher_shape, s, g):
    with pytest.raises(ValueError):
        dino_loss(torch.randn(student_shape), torch.randn(teacher_shape), s, g)


# ---- DINOCentering


def test_centering_forward_by_hand():
    centering = DINOCentering(3)
    centering.center.copy_(torch.tensor([[1.0, 0.0, -1.0]]))
    logits = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 0.5]])
    temp = 0.5
    expected = []
    for row in logits.tolist():
        e = [math.exp((x - c) / temp) for x, c in zip(row, [1.0, 0.0, -1.0])]
        expected.append([v / sum(e) for v in e])
    torch.testing.assert_close(centering(logits, temp), torch.tensor(expected))
    assert not centering(logits.requires_grad_(), temp).requires_grad


def test_centering_update_is_an_ema_of_the_batch_mean():
    centering = DINOCentering(2, momentum=0.9)
    centering.center.copy_(torch.tensor([[1.0, -1.0]]))
    centering.update(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))  # mean (2, 4)
    torch.testing.assert_close(centering.center, torch.tensor([[0.9 * 1 + 0.1 * 2, 0.9 * -1 + 0.1 * 4]]))
    centering.update(torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(centering.center, torch.tensor([[0.9 * 1.1, 0.9 * -0.5]]))


def test_centering_update_over_masked_rows_of_patch_logits():
    centering = DINOCentering(2, momentum=0.5)
    logits = torch.tensor([[[1.0, 1.0], [9.0, 9.0]], [[3.0, 5.0], [9.0, 9.0]]])  # (B=2, N=2, K=2)
    mask = torch.tensor([[True, False], [True, False]])
    centering.update(logits, mask)  # mean of the masked patches: (2, 3)
    torch.testing.assert_close(centering.center, torch.tensor([[1.0, 1.5]]))
    centering.update(logits, torch.zeros(2, 2, dtype=torch.bool))  # nothing masked: unchanged
    torch.testing.assert_close(centering.center, torch.tensor([[1.0, 1.5]]))
    assert centering(logits, 0.1).shape == logits.shape


def test_centering_state_survives_a_state_dict_round_trip():
    centering = DINOCentering(4)
    centering.update(random(6, 4))
    buffer = io.BytesIO()
    torch.save(centering.state_dict(), buffer)
    buffer.seek(0)
    restored = DINOCentering(4)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert "center" in centering.state_dict()
    torch.testing.assert_close(restored.center, centering.center)
    assert centering.center.abs().sum() > 0


# ---- SinkhornKnoppCentering


def numpy_sinkhorn(logits: np.ndarray, temp: float, iterations: int) -> np.ndarray:
    """DINOv2's iterations as written (sinkhorn_knopp_teacher), one process, float64."""
    q = np.exp(logits / temp).T  # (K, B)
    k, b = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(1, keepdims=True)
        q /= k
        q /= q.sum(0, keepdims=True)
        q /= b
    return (q * b).T


@pytest.mark.parametrize("iterations", [1, 3, 10])
def test_sinkhorn_knopp_against_numpy(iterations):
    logits = random(7, 4)
    expected = numpy_sinkhorn(logits.double().numpy(), 0.5, iterations)
    got = SinkhornKnoppCentering(iterations)(logits, 0.5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_sinkhorn_knopp_rows_sum_to_one_and_columns_approach_rows_over_prototypes():
    """What the algorithm guarantees: rows sum to 1 after every round (its last step), and the column sums converge
    to R / K (the scaling of a positive matrix to those margins): closer with every round."""
    rows, k = 12, 5
    logits = 3 * random(rows, k)
    softmax_error = (torch.softmax(logits / 0.5, -1).sum(0) - rows / k).abs().max()
    errors = []
    for iterations in (1, 3, 200):
        q = SinkhornKnoppCentering(iterations)(logits, 0.5)
        torch.testing.assert_close(q.sum(1), torch.ones(rows))
        errors.append((q.sum(0) - rows / k).abs().max())
    assert softmax_error > errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_sinkhorn_knopp_ignores_a_shift_per_prototype_and_does_not_overflow():
    logits = random(6, 4)
    sk = SinkhornKnoppCentering()
    shifted = logits + torch.tensor([[100.0, -50.0, 3.0, 0.0]])  # exp(100 / 0.05) is inf in float32 and float64
    torch.testing.assert_close(sk(shifted, 0.05), sk(logits, 0.05), rtol=1e-4, atol=1e-6)
    assert torch.isfinite(sk(shifted, 0.05)).all()


def test_sinkhorn_knopp_with_a_mask_uses_the_selected_rows_only():
    logits = random(2, 3, 4)  # (B, N, K) patch logits
    mask = torch.tensor([[True, False, True], [False, True, True]])
    sk = SinkhornKnoppCentering()
    got = sk(logits, 0.5, mask)
    torch.testing.assert_close(got[mask], sk(logits[mask], 0.5))
    assert (got[~mask] == 0).all()
    assert (sk(logits, 0.5, torch.zeros(2, 3, dtype=torch.bool)) == 0).all()  # nothing selected: zeros, no NaN


def test_sinkhorn_knopp_is_stateless():
    sk = SinkhornKnoppCentering()
    sk.update(random(4, 3))
    assert sk.state_dict() == {}


@pytest.mark.parametrize("centering", [DINOCentering(5), SinkhornKnoppCentering()], ids=["center", "sinkhorn"])
def test_centerings_are_interchangeable_in_the_loss(centering: TeacherCentering):
    teacher_logits = random(2 * 4, 5)
    targets = centering(teacher_logits, 0.04)
    torch.testing.assert_close(targets.sum(1), torch.ones(8))
    loss = dino_loss(random(6 * 4, 5, seed=3), targets, 6, 2)
    centering.update(teacher_logits)
    assert torch.isfinite(loss)


# ---- koleo_loss


def loop_koleo(x: np.ndarray, eps: float = 1e-8) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    nearest = [min(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i) for i in range(len(x))]
    return -float(np.mean(np.log(np.array(nearest) + eps)))


def test_koleo_against_a_loop_over_pairs():
    x = random(9, 4)
    assert koleo_loss(x).item() == pytest.approx(loop_koleo(x.double().numpy()), rel=1e-5)


def test_koleo_by_hand_and_scale_invariant():
    # four points at the corners of a square on the unit circle: each nearest neighbour is sqrt(2) away
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert koleo_loss(square).item() == pytest.approx(-0.5 * math.log(2), abs=1e-6)
    assert koleo_loss(square * torch.tensor([[3.0], [0.5], [2.0], [7.0]])).item() == pytest.approx(-0.5 * math.log(2))


def test_koleo_pushes_neighbours_apart():
    x = random(8, 3).requires_grad_()
    before = koleo_loss(x)
    before.backward()
    with torch.no_grad():
        after = koleo_loss(x - 0.01 * x.grad)
    assert after < before


def test_koleo_needs_two_rows():
    with pytest.raises(ValueError):
        koleo_loss(torch.randn(1, 3))


# ---- ibot_patch_loss


def loop_ibot(student: np.ndarray, teacher: np.ndarray, mask: np.ndarray, temp: float) -> float:
    """DINOv2's forward_masked one image and one masked patch at a time."""
    total = 0.0
    for b in range(len(mask)):
        masked = [n for n in range(mask.shape[1]) if mask[b, n]]
        for n in masked:
            total += -(teacher[b, n] * log_softmax(student[b, n] / temp)).sum() / len(masked)
    return total / len(mask)


def test_ibot_against_a_loop_over_images_and_masked_patches():
    student, teacher = random(3, 5, 6), probs(3, 5, 6)
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)
    expected = loop_ibot(student.double().numpy(), teacher.double().numpy(), mask.numpy(), 0.1)
    assert ibot_patch_loss(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)


def test_ibot_an_image_without_masked_patches_adds_nothing_but_counts():
    student, teacher = random(3, 5, 6), probs(3, 5, 6)
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    teacher[2] = float("nan")  # never read: a dense product would turn this into NaN
    with_empty = ibot_patch_loss(student, teacher, mask)
    without = ibot_patch_loss(student[:2], teacher[:2], mask[:2])
    torch.testing.assert_close(with_empty * 3, without * 2)


def test_ibot_gradients_reach_masked_student_patches_only():
    student = random(2, 4, 5).requires_grad_()
    teacher_logits = random(2, 4, 5, seed=2).requires_grad_()
    mask = torch.tensor([[True, False, True, False], [False, False, False, True]])
    ibot_patch_loss(student, torch.softmax(teacher_logits, -1), mask).backward()
    assert teacher_logits.grad is None
    assert (student.grad[~mask] == 0).all() and (student.grad[mask].abs().sum(-1) > 0).all()


# ---- TeacherTemperature


def test_teacher_temperature_schedule():
    assert TeacherTemperature()(0) == TeacherTemperature()(250) == 0.04  # DINO's default: constant 0.04
    paper = TeacherTemperature(temp=0.07, warmup_temp=0.04, warmup_epochs=30)
    assert paper(0) == pytest.approx(0.04)
    assert paper(7.5) == pytest.approx(0.0475)
    assert paper(15) == pytest.approx(0.055)
    assert paper(30) == pytest.approx(0.07) and paper(299) == pytest.approx(0.07)
    assert pickle.loads(pickle.dumps(paper))(15) == pytest.approx(0.055)
    with pytest.raises(ValueError):
        TeacherTemperature(warmup_epochs=-1)


# ---- the hot path


class RecordHostReads(TorchDispatchMode):
    """The ops through which a value goes from the device to the host or back (see tests/test_no_device_reads.py),
    and indexing by a bool mask (on the CPU it does not pass through ``nonzero`` at this level)."""

    OPS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
           torch.ops.aten.lift_fresh.default, torch.ops.aten.masked_select.default}

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        bool_index = func is torch.ops.aten.index.Tensor and any(
            i is not None and i.dtype == torch.bool for i in args[1])
        if func in self.OPS or bool_index:
            self.events.append(str(func))
        return func(*args, **(kwargs or {}))


def test_the_recorder_sees_host_reads():
    x = torch.randn(3)
    for read in (lambda: x.sum().item(), lambda: x[x > 0], lambda: torch.tensor(2.0)):
        with RecordHostReads() as recorder:
            read()
        assert recorder.events


def test_nothing_reads_back_from_the_device():
    student, teacher_logits = random(4 * 3, 5).requires_grad_(), random(2 * 3, 5)
    patches, patch_logits = random(3, 4, 5).requires_grad_(), random(3, 4, 5)
    mask = torch.rand(3, 4, generator=torch.Generator().manual_seed(0)) < 0.5
    center, sk = DINOCentering(5), SinkhornKnoppCentering()

    def step():
        loss = dino_loss(student, center(teacher_logits, 0.04), 4, 2)
        loss = loss + dino_loss(student, sk(teacher_logits, 0.04), 4, 2)
        loss = loss + ibot_patch_loss(patches, sk(patch_logits, 0.04, mask), mask) + koleo_loss(student)
        loss.backward()
        center.update(teacher_logits)
        center.update(patch_logits, mask)

    with RecordHostReads() as recorder:
        step()
    assert recorder.events == []
