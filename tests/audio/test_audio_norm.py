"""Pre-normalisation statistics (dataset and running) and post-normalisation over the batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byol.views.audio_frontend import LogMelSpectrogram
from byol.views.audio_norm import DatasetNorm, NormalizeBatch, RunningNorm, log_mel_moments


def _batches(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 1, 8, 12, generator=g) * s + m for n, s, m in ((3, 2.0, -4.0), (5, 0.5, 1.0), (1, 3.0, 0.0))]


def test_dataset_statistics_of_a_known_signal():
    # two clips: a full-scale-ish tone and silence; the statistics are those of all their log-mel values
    t = torch.arange(15200) / 16000
    waves = torch.stack([0.5 * torch.sin(2 * math.pi * 440 * t), torch.zeros(15200)])
    lms = LogMelSpectrogram()(waves)
    norm = DatasetNorm()
    assert norm.needs_statistics
    norm.set_from_moments(log_mel_moments(lms[:1]) + log_mel_moments(lms[1:]))
    values = lms.double().numpy().ravel()
    assert norm.statistics() == pytest.approx((values.mean(), values.std()), rel=1e-9)
    assert not norm.needs_statistics
    torch.testing.assert_close(norm(lms).double().mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-5, rtol=0)


def test_statistics_of_silence_alone_are_refused():
    lms = LogMelSpectrogram()(torch.zeros(3, 4000))
    with pytest.raises(ValueError, match="silent"):
        DatasetNorm().set_from_moments(log_mel_moments(lms))


def test_dataset_norm_needs_statistics_before_use_and_keeps_them_in_its_state_dict():
    with pytest.raises(RuntimeError, match="no statistics"):
        DatasetNorm()(torch.zeros(1, 1, 8, 8))
    known = DatasetNorm(-3.0, 2.0)
    torch.testing.assert_close(known(torch.full((1, 1, 2, 2), 1.0)), torch.full((1, 1, 2, 2), 2.0))
    restored = DatasetNorm()
    restored.load_state_dict(known.state_dict())
    assert not restored.needs_statistics and restored.statistics() == (-3.0, 2.0)


def test_running_norm_tracks_the_exact_statistics_then_freezes():
    norm = RunningNorm(update_epochs=2)
    batches = _batches()
    for epoch, x in zip((0, 1, 1), batches):
        norm.update(x, epoch)
    values = torch.cat([b.flatten() for b in batches]).double().numpy()
    assert norm.statistics() == pytest.approx((values.mean(), values.std()), rel=1e-9)
    norm.update(torch.full((4, 1, 8, 12), 100.0), epoch=2)  # after the warm-up: frozen
    assert norm.statistics() == pytest.approx((values.mean(), values.std()), rel=1e-9)
    fresh = RunningNorm()
    fresh.load_state_dict(norm.state_dict())
    torch.testing.assert_close(fresh(batches[0]), norm(batches[0]))


def test_post_normalisation_standardises_the_whole_batch():
    x = torch.cat(_batches())
    out = NormalizeBatch()(x)
    expected = (x.numpy() - x.numpy().mean()) / x.numpy().std(ddof=1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
