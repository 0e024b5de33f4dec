"""Downstream evaluation of audio backbones, as in the BYOL-A papers, and the FSDD comparison.

The protocol (Niizumi et al. 2021, arXiv:2103.06695; Niizumi et al. 2023, arXiv:2204.07402, with their EVAR
evaluation code): the backbone is frozen; each clip is embedded whole (cut into segments of the pretraining
length, embedded, averaged: :func:`clip_embeddings`); the log-mels are pre-normalised with the statistics of the
downstream training set (:func:`log_mel_statistics`); embeddings are standardised with training statistics; a
linear classifier is trained with Adam and early stopping on a validation split (:func:`fit_linear_early_stopping`:
lr 1e-3, batches of 200, at most 200 epochs, patience 20); the test accuracy is reported.

:func:`fsdd_comparison` runs it on the Free Spoken Digit Dataset for three encoders: a BYOL-A backbone, the same
architecture at random initialisation, and a linear classifier on the raw log-mel values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.audio import FSDD, AudioClips
from ..views.audio_frontend import LogMelPreprocess
from ..views.audio_norm import DatasetNorm, log_mel_moments
from .linear import linear_probe, standardize, stratified_split


def segment_clip(wave: Tensor, segment: int) -> Tensor:
    """Cut a clip ``(L,)`` into segments ``(S, segment)`` that cover it.

    A clip of at most one segment is zero-padded on both sides into one segment (as the datasets do). A longer
    clip gives ``S = ceil(L / segment)`` segments starting every ``segment`` samples, the last one ending at the
    clip's end (so it overlaps its predecessor instead of holding padding).
    """
    length = wave.shape[0]
    if length <= segment:
        left = (segment - length) // 2
        return F.pad(wave, (left, segment - length - left))[None]
    starts = list(range(0, length - segment, segment)) + [length - segment]
    return torch.stack([wave[s : s + segment] for s in starts])


class ClipSegments(Dataset[tuple[Tensor, int]]):
    """Each clip of an :class:`AudioClips` dataset (or a ``Subset`` of one) as ``(segments (S, n), label)``."""

    def __init__(self, clips: AudioClips | Subset) -> None:
        self.clips, self.indices = (clips.dataset, list(clips.indices)) if isinstance(clips, Subset) else (
            clips, list(range(len(clips))))
        self.segment = self.clips.segment_samples

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        i = self.indices[index]
        return segment_clip(self.clips.load(i), self.segment), self.clips.targets[i]


def _collate(items: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """``(segments (sum S, n), owner clip of each segment (sum S,), labels (B,))``."""
    segments = torch.cat([s for s, _ in items])
    owner = torch.cat([torch.full((len(s),), i) for i, (s, _) in enumerate(items)])
    return segments, owner, torch.tensor([y for _, y in items])


def _segments(clips: AudioClips | Subset | Sequence[tuple[Tensor, int]]) -> Dataset | Sequence[tuple[Tensor, int]]:
    """Clips as ``(segments, label)`` items: datasets are wrapped, already decoded item lists pass through."""
    return ClipSegments(clips) if isinstance(clips, (AudioClips, Subset)) else clips


def _loader(clips: AudioClips | Subset | Sequence[tuple[Tensor, int]], batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(_segments(clips), batch_size=batch_size, num_workers=num_workers, collate_fn=_collate)


@torch.no_grad()
def clip_embeddings(
    encoder: Callable[[Tensor], Tensor],
    preprocess: Callable[[Tensor], Tensor],
    clips: AudioClips | Subset | Sequence[tuple[Tensor, int]],
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Embeddings of whole clips: the mean of the embeddings of each clip's segments (:func:`segment_clip`).

    Args:
        encoder: frozen, in eval mode; maps ``(S, 1, F, T)`` log-mels to ``(S, D)``.
        preprocess: waveforms ``(S, n)`` to the encoder's input (e.g. :class:`LogMelPreprocess`).
        clips: the dataset (its ``segment_samples`` is the segment length), or its items already decoded by
            :class:`ClipSegments`.

    Returns:
        ``(embeddings (N, D) float32 on CPU, labels (N,) int64)`` in dataset order.
    """
    out, labels = [], []
    for segments, owner, y in _loader(clips, batch_size, num_workers):
        emb = encoder(preprocess(segments.to(device))).float().cpu()
        sums = torch.zeros(len(y), emb.shape[1]).index_add_(0, owner, emb)
        out.append(sums / torch.bincount(owner, minlength=len(y))[:, None])
        labels.append(y)
    return torch.cat(out), torch.cat(labels).long()


@torch.no_grad()
def log_mel_statistics(
    front_end: Callable[[Tensor], Tensor],
    clips: AudioClips | Subset | Sequence[tuple[Tensor, int]],
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Mean and std of every log-mel value of the clips' segments (the papers' pre-normalisation statistics)."""
    moments = torch.zeros(3, dtype=torch.float64)
    for segments, _, _ in _loader(clips, batch_size, num_workers):
        moments += log_mel_moments(front_end(segments.to(device))).cpu()
    norm = DatasetNorm()
    norm.set_from_moments(moments)
    return norm.statistics()


def fit_linear_early_stopping(
    train_x: Tensor,
    train_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    num_classes: int,
    lr: float = 1e-3,
    batch_size: int = 200,
    max_epochs: int = 200,
    patience: int = 20,
    seed: int = 0,
) -> tuple[nn.Linear, float, int]:
    """Train ``Linear(D, C)`` with Adam and cross-entropy; keep the weights of the best validation accuracy.

    As EVAR's classifier, with its defaults (Adam lr 1e-3, batches of 200, at most 200 epochs; EVAR's BYOL-A
    configs lower the rate to 3e-4, which leaves the classifier under-fitted on a few thousand clips): training
    stops once ``patience`` epochs have passed without a validation accuracy at least as good as the best (a tie
    counts as progress and moves the best to the later epoch). Mini-batches are shuffled with a generator seeded
    by ``seed``; the result is deterministic.

    Args:
        train_x, val_x: ``(N, D)`` standardised features.
        train_y, val_y: ``(N,)`` labels in ``[0, num_classes)``.

    Returns:
        ``(head in eval mode without gradients, best validation accuracy in percent, its epoch (1-based))``.
    """
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(train_x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.01)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    best, best_epoch, best_state = -1.0, 0, copy.deepcopy(head.state_dict())
    for epoch in range(1, max_epochs + 1):
        for idx in torch.randperm(len(train_x), generator=g).split(batch_size):
            opt.zero_grad()
            F.cross_entropy(head(train_x[idx]), train_y[idx]).backward()
            opt.step()
        with torch.no_grad():
            acc = 100.0 * (head(val_x).argmax(1) == val_y).float().mean().item()
        if acc >= best:
            best, best_epoch, best_state = acc, epoch, copy.deepcopy(head.state_dict())
        elif epoch - best_epoch >= patience:
            break
    head.load_state_dict(best_state)
    return head.eval().requires_grad_(False), best, best_epoch


@dataclass
class AudioProbeResult:
    """Test accuracy (percent) of the early-stopped linear classifier, its validation accuracy and epoch."""

    accuracy: float
    val_accuracy: float
    epochs: int
    num_train: int
    num_val: int
    num_test: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_eval_embeddings(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    val_fraction: float = 0.1,
    seed: int = 0,
    **fit_kwargs: Any,
) -> AudioProbeResult:
    """The papers' linear evaluation of fixed embeddings.

    A stratified ``val_fraction`` of the training embeddings is held out for early stopping; embeddings are
    standardised with the statistics of the rest, on which the classifier is trained
    (:func:`fit_linear_early_stopping`, ``fit_kwargs`` go there); the test split is used once, at the end.
    """
    fit, val = stratified_split(train_y, val_fraction, seed)
    fx, vx, tx = standardize(train_x[fit], train_x[val], test_x)
    head, val_acc, epochs = fit_linear_early_stopping(fx, train_y[fit], vx, train_y[val], num_classes, seed=seed,
                                                      **fit_kwargs)
    acc = 100.0 * (head(tx).argmax(1) == test_y).float().mean().item()
    return AudioProbeResult(acc, val_acc, epochs, len(fit), len(val), len(test_y))


def audio_linear_eval(
    backbone: nn.Module,
    preprocess: LogMelPreprocess,
    train: AudioClips,
    test: AudioClips,
    renormalise: bool = True,
    val_fraction: float = 0.1,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> AudioProbeResult:
    """The papers' downstream protocol for a frozen audio backbone on a labelled train/test pair of datasets.

    Args:
        backbone: log-mels ``(B, 1, F, T)`` to ``(B, D)``; put in eval mode.
        preprocess: the backbone's front end (from its export); with ``renormalise`` (the papers' practice)
            its mean and std are replaced by those of ``train``.
        train, test: datasets of whole labelled clips (their ``segment_samples`` is the segment length).
    """
    preprocess = _renormalised(preprocess, train, batch_size, num_workers, device) if renormalise else preprocess
    backbone = backbone.eval().to(device)
    preprocess = preprocess.to(device)
    (trx, try_), (tex, tey) = (clip_embeddings(backbone, preprocess, d, batch_size, num_workers, device)
                               for d in (train, test))
    return linear_eval_embeddings(trx, try_, tex, tey, max(train.num_classes, test.num_classes), val_fraction, seed)


def _renormalised(preprocess: LogMelPreprocess, clips: AudioClips | Subset | Sequence[tuple[Tensor, int]],
                  batch_size: int, num_workers: int,
                  device: torch.device | str) -> LogMelPreprocess:
    """``preprocess`` with the log-mel mean and std of ``clips``."""
    mean, std = log_mel_statistics(preprocess.front_end.to(device), clips, batch_size, num_workers, device)
    config = {k: v for k, v in preprocess.export_config().items() if k != "class"}
    return LogMelPreprocess(**{**config, "mean": mean, "std": std})


class FlattenedLogMel(nn.Module):
    """The "raw log-mel" baseline's encoder: log-mels ``(B, 1, F, T)`` flattened to ``(B, F * T)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def fsdd_comparison(
    encoders: dict[str, nn.Module],
    preprocess: LogMelPreprocess,
    root: str | Path,
    segment_seconds: float = 0.95,
    repeats: int = 5,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Linear evaluation of several frozen encoders on FSDD: the conventional and the speaker-held-out splits.

    Every clip (all 3,000) is decoded once and embedded once per encoder, whole (:func:`clip_embeddings`), after
    pre-normalisation with the log-mel statistics of the conventional training split (indices 5-49). Then, per
    encoder:

    - the conventional split (train on indices 5-49, 2,700 clips; test on 0-4, 300): the papers' protocol
      (:func:`linear_eval_embeddings`) ``repeats`` times with seeds ``seed, seed + 1, ...`` (validation split,
      initialisation and batch order; the papers also average repeated runs), mean and std; and, as a
      deterministic second opinion, the framework's L-BFGS probe (:func:`byol.eval.linear.linear_probe`, weight
      decay chosen on a validation split);
    - the speaker-held-out split: leave one speaker out (train on the five others' 2,500 clips, test on the
      held-out speaker's 500), for each of the six speakers, the papers' protocol once; mean and std over speakers.

    Args:
        encoders: name -> encoder (log-mels ``(B, 1, F, T)`` to ``(B, D)``), e.g. ``{"byola": ..., "random": ...,
            "logmel": FlattenedLogMel()}``.
        preprocess: the log-mel front end (its statistics are replaced as above).
        root: FSDD's ``recordings`` folder or its parent.
        repeats: runs of the protocol on the conventional split.

    Returns:
        ``{"conventional": {name: {"accuracy", "std", "lbfgs_accuracy", "runs": [AudioProbeResult dicts]}},
        "speaker_held_out": {name: {"accuracy", "std", "per_speaker": {speaker: accuracy}}},
        "norm_stats": [mean, std]}``, accuracies in percent.
    """
    clips = FSDD(root, split="all", segment_seconds=segment_seconds, sample_rate=preprocess.sample_rate, crop="center")
    test = torch.tensor([i in FSDD.TEST_INDICES for i in clips.recording_index])
    decoded = list(DataLoader(ClipSegments(clips), batch_size=None, num_workers=num_workers))
    preprocess = _renormalised(preprocess, [decoded[i] for i in torch.nonzero(~test).flatten()], batch_size, 0, device)
    preprocess = preprocess.to(device)
    speakers = sorted(set(clips.speakers_of))
    speaker_of = torch.tensor([speakers.index(s) for s in clips.speakers_of])
    num_classes = clips.num_classes
    results: dict[str, Any] = {"conventional": {}, "speaker_held_out": {},
                               "norm_stats": [preprocess.mean, preprocess.std]}
    for name, encoder in encoders.items():
        x, y = clip_embeddings(encoder.eval().to(device), preprocess, decoded, batch_size, 0, device)
        runs = [linear_eval_embeddings(x[~test], y[~test], x[test], y[test], num_classes, seed=seed + r)
                for r in range(repeats)]
        accs = torch.tensor([r.accuracy for r in runs])
        lbfgs = linear_probe(x[~test], y[~test], x[test], y[test], num_classes, seed=seed)
        results["conventional"][name] = {"accuracy": accs.mean().item(), "std": _std(accs),
                                         "lbfgs_accuracy": lbfgs.top1, "runs": [r.to_dict() for r in runs]}
        per_speaker = {
            speaker: linear_eval_embeddings(x[speaker_of != s], y[speaker_of != s], x[speaker_of == s],
                                            y[speaker_of == s], num_classes, seed=seed).accuracy
            for s, speaker in enumerate(speakers)
        }
        accs = torch.tensor(list(per_speaker.values()))
        results["speaker_held_out"][name] = {"accuracy": accs.mean().item(), "std": _std(accs),
                                             "per_speaker": per_speaker}
    return results


def _std(values: Tensor) -> float:
    return values.std().item() if len(values) > 1 else 0.0


def random_like(backbone: nn.Module, seed: int = 0) -> nn.Module:
    """A freshly initialised copy of ``backbone``'s architecture (rebuilt from ``export_config()``, seeded)."""
    config = {k: v for k, v in backbone.export_config().items() if k not in ("class", "num_features")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return type(backbone)(**config)


__all__ = [
    "AudioProbeResult", "ClipSegments", "FlattenedLogMel", "audio_linear_eval", "clip_embeddings",
    "fit_linear_early_stopping", "fsdd_comparison", "linear_eval_embeddings", "log_mel_statistics", "random_like",
    "segment_clip",
]
