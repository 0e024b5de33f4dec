"""The papers' downstream protocol: whole-clip embeddings, early-stopped linear classifier, FSDD comparison."""

from __future__ import annotations

import pytest
import torch
from audio_formats import write_audio_folder

from byol.data.audio import FSDD
from byol.eval.audio import (
    FlattenedLogMel, audio_linear_eval, clip_embeddings, fit_linear_early_stopping, fsdd_comparison,
    linear_eval_embeddings, log_mel_statistics, random_like, segment_clip,
)
from byol.models.audio_ntt import AudioNTT2020
from byol.views.audio_frontend import LogMelPreprocess, LogMelSpectrogram


def test_short_clips_are_one_centred_segment_and_long_ones_are_covered():
    assert segment_clip(torch.ones(3), 8).tolist() == [[0, 0, 1, 1, 1, 0, 0, 0]]
    segments = segment_clip(torch.arange(20.0), 8)
    assert segments[:, 0].tolist() == [0, 8, 12] and segments[-1, -1] == 19  # the last one ends at the end


class _MeanEncoder(torch.nn.Module):
    """``(S, 1, F, T)`` to ``(S, 1)``: the mean of each input."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]


def test_clip_embeddings_average_the_segments_of_each_clip(tmp_path):
    root = write_audio_folder(tmp_path, seconds=0.6)  # 0.6 s clips, 0.25 s segments: 3 segments per clip
    clips = FSDD(root, "all", segment_seconds=0.25, crop="center")
    front = LogMelSpectrogram()
    x, y = clip_embeddings(_MeanEncoder(), front, clips, batch_size=5)
    assert x.shape == (12, 1) and y.tolist() == clips.targets
    segments = segment_clip(clips.load(7), clips.segment_samples)
    assert len(segments) == 3
    assert x[7].item() == pytest.approx(front(segments).mean().item(), rel=1e-5)


def _clusters(n: int = 60, dim: int = 8, seed: int = 0, spread: float = 3.0):
    """``n`` points of 3 Gaussian clusters (the same means for every seed) and their labels."""
    means = torch.randn(3, dim, generator=torch.Generator().manual_seed(0)) * spread
    y = torch.arange(n) % 3
    return means[y] + torch.randn(n, dim, generator=torch.Generator().manual_seed(seed + 1)), y


def test_early_stopping_keeps_the_best_validation_epoch():
    x, y = _clusters(spread=0.5)  # overlapping clusters: the validation accuracy goes up and down
    vx, vy = _clusters(seed=1, spread=0.5)
    head, best, epoch = fit_linear_early_stopping(x, y, vx, vy, 3, lr=1e-2, max_epochs=500, patience=5)
    assert epoch < 500 and best == pytest.approx(100.0 * (head(vx).argmax(1) == vy).float().mean().item())
    assert best > 50 and not head.weight.requires_grad
    _, best_separable, _ = fit_linear_early_stopping(*_clusters(), *_clusters(seed=1), 3, lr=1e-2, max_epochs=50)
    assert best_separable > 95


def test_linear_evaluation_of_separable_embeddings():
    x, y = _clusters(200)
    tx, ty = _clusters(60, seed=2)
    result = linear_eval_embeddings(x, y, tx, ty, 3, lr=1e-2)
    assert result.accuracy > 95 and result.num_train + result.num_val == 200 and result.num_test == 60


def test_fsdd_protocol_runs_end_to_end_on_a_tiny_copy(tmp_path):
    root = write_audio_folder(tmp_path / "recordings")
    train, test = (FSDD(root, s, segment_seconds=0.25, crop="center") for s in ("train", "test"))
    mean, std = log_mel_statistics(LogMelSpectrogram(), train)
    assert std > 0
    backbone = AudioNTT2020(d=16, channels=4)
    result = audio_linear_eval(backbone, LogMelPreprocess(), train, test)
    assert 0 <= result.accuracy <= 100 and result.num_test == 4
    results = fsdd_comparison({"logmel": FlattenedLogMel(), "random": random_like(backbone)}, LogMelPreprocess(),
                              tmp_path, segment_seconds=0.25, repeats=2)
    assert set(results["conventional"]) == {"logmel", "random"}
    conventional = results["conventional"]["logmel"]
    assert len(conventional["runs"]) == 2 and 0 <= conventional["lbfgs_accuracy"] <= 100
    assert conventional["accuracy"] == pytest.approx(sum(r["accuracy"] for r in conventional["runs"]) / 2)
    assert set(results["speaker_held_out"]["logmel"]["per_speaker"]) == {"alice", "bob"}
    assert results["norm_stats"][0] == pytest.approx(mean)  # the training split's statistics


def test_random_like_rebuilds_the_architecture_with_fresh_weights():
    trained = AudioNTT2020(d=16, channels=4)
    a, b = random_like(trained, seed=3), random_like(trained, seed=3)
    assert a.export_config() == trained.export_config()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
