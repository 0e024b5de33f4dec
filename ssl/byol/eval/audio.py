"""Downstream evaluation of audio backbones, as in the BYOL-A papers, and the FSDD comparison.

The protocol (Niizumi et al. 2021, arXiv:2103.06695; Niizumi et al. 2023, arXiv:2204.07402, with their EVAR
evaluation code): the backbone is frozen; each clip is embedded whole (cut into segments of the pretraining
length, embedded, averaged: :func:`clip_embeddings`); the log-mels are pre-normalised with the statistics of the
downstream training set (:func:`log_mel_statistics`); embeddings are standardised with training statistics; a
linear classifier is trained with Adam and early stopping on a validation split (:func:`fit_linear_early_stopping`:
lr 1e-3, batches of 200, at most 200 epochs, patience 20); the test accuracy is reported.

:func:`fsdd_comparison` runs it on the Free Spoken Digit Dataset for several encoders (e.g. a BYOL-A backbone, the
same architecture at random initialisation, and a linear classifier on the raw log-mel values);
:func:`clips_comparison` on any labelled audio set with a given train/test split. :func:`audio_protocol` picks one
for an :class:`AudioData` (``byol eval audio`` and ``scripts/byola_fsdd.py`` both run it), after
:func:`open_audio_data` has checked, before anything is decoded, that the data can be evaluated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.audio import FSDD, AudioClips, AudioFolder, AudioManifest
from ..views.audio_frontend import LogMelPreprocess
from ..views.audio_norm import DatasetNorm, log_mel_moments
from .features import track_progress
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
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Embeddings of whole clips: the mean of the embeddings of each clip's segments (:func:`segment_clip`).

    Args:
        encoder: frozen, in eval mode; maps ``(S, 1, F, T)`` log-mels to ``(S, D)``.
        preprocess: waveforms ``(S, n)`` to the encoder's input (e.g. :class:`LogMelPreprocess`).
        clips: the dataset (its ``segment_samples`` is the segment length), or its items already decoded by
            :class:`ClipSegments`.
        progress: show a progress bar over the batches.

    Returns:
        ``(embeddings (N, D) float32 on CPU, labels (N,) int64)`` in dataset order.
    """
    out, labels = [], []
    for segments, owner, y in track_progress(_loader(clips, batch_size, num_workers), "clip embeddings",
                                             enabled=progress):
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
    decoded = list(track_progress(DataLoader(ClipSegments(clips), batch_size=None, num_workers=num_workers),
                                  "decoding clips"))
    preprocess = _renormalised(preprocess, [decoded[i] for i in torch.nonzero(~test).flatten()], batch_size, 0, device)
    preprocess = preprocess.to(device)
    speakers = sorted(set(clips.speakers_of))
    speaker_of = torch.tensor([speakers.index(s) for s in clips.speakers_of])
    num_classes = clips.num_classes
    results: dict[str, Any] = {"conventional": {}, "speaker_held_out": {},
                               "norm_stats": [preprocess.mean, preprocess.std]}
    for name, encoder in track_progress(encoders.items(), "encoders"):
        x, y = clip_embeddings(encoder.eval().to(device), preprocess, decoded, batch_size, 0, device)
        results["conventional"][name] = repeated_linear_eval(x[~test], y[~test], x[test], y[test], num_classes,
                                                             repeats, seed)
        per_speaker = {
            speaker: linear_eval_embeddings(x[speaker_of != s], y[speaker_of != s], x[speaker_of == s],
                                            y[speaker_of == s], num_classes, seed=seed).accuracy
            for s, speaker in track_progress(list(enumerate(speakers)), f"{name}: held-out speakers")
        }
        accs = torch.tensor(list(per_speaker.values()))
        results["speaker_held_out"][name] = {"accuracy": accs.mean().item(), "std": _std(accs),
                                             "per_speaker": per_speaker}
    return results


def repeated_linear_eval(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int, repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The papers' protocol (:func:`linear_eval_embeddings`) ``repeats`` times with seeds ``seed, seed + 1, ...``,
    and the deterministic L-BFGS probe (:func:`byol.eval.linear.linear_probe`) as a second opinion.

    Returns:
        ``{"accuracy": mean, "std": sample std, "lbfgs_accuracy", "runs": [AudioProbeResult dicts]}``, percent.
    """
    runs = [linear_eval_embeddings(train_x, train_y, test_x, test_y, num_classes, seed=seed + r)
            for r in track_progress(range(repeats), "linear runs")]
    accs = torch.tensor([r.accuracy for r in runs])
    lbfgs = linear_probe(train_x, train_y, test_x, test_y, num_classes, seed=seed)
    return {"accuracy": accs.mean().item(), "std": _std(accs), "lbfgs_accuracy": lbfgs.top1,
            "runs": [r.to_dict() for r in runs]}


def clips_comparison(
    encoders: dict[str, nn.Module],
    preprocess: LogMelPreprocess,
    train: AudioClips,
    test: AudioClips,
    repeats: int = 5,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """The papers' protocol for several frozen encoders on a given train/test split of labelled clips.

    The log-mels are pre-normalised with the statistics of ``train``; every clip is embedded whole, once per
    encoder; then :func:`repeated_linear_eval` (a stratified 10 % of ``train`` for early stopping).

    Returns:
        ``{"given_split": {name: {"accuracy", "std", "lbfgs_accuracy", "runs"}}, "norm_stats": [mean, std]}``.
    """
    preprocess = _renormalised(preprocess, train, batch_size, num_workers, device).to(device)
    num_classes = max(train.num_classes, test.num_classes)
    results: dict[str, Any] = {"given_split": {}, "norm_stats": [preprocess.mean, preprocess.std]}
    for name, encoder in track_progress(encoders.items(), "encoders"):
        encoder = encoder.eval().to(device)
        (trx, try_), (tex, tey) = (clip_embeddings(encoder, preprocess, d, batch_size, num_workers, device)
                                   for d in (train, test))
        results["given_split"][name] = repeated_linear_eval(trx, try_, tex, tey, num_classes, repeats, seed)
    return results


def _std(values: Tensor) -> float:
    return values.std().item() if len(values) > 1 else 0.0


# ----- labelled audio for `byol eval audio` ------------------------------------------------------------------


@dataclass
class AudioData:
    """Labelled audio for the papers' protocol (``byol eval audio BACKBONE --data.root ...``).

    Args:
        root: the Free Spoken Digit Dataset (its ``recordings`` folder or the parent), evaluated on its
            conventional split and leaving each speaker out; or, with ``test``, the training clips of another
            labelled set: a folder ``root/<class>/**/*.wav`` or a CSV manifest of ``path,label`` rows.
        test: the test clips of that other set (a folder or a manifest); its classes must be training classes.
        segment_seconds: the length of the segments each clip is cut into (embedded, then averaged); BYOL-A's
            pretraining segment is 0.95 s.
    """

    root: str
    test: str | None = None
    segment_seconds: float = 0.95


def _open_clips(path: str, role: str, **kwargs: Any) -> AudioClips:
    """A folder of class sub-folders or a CSV manifest, whose clips must all be labelled."""
    clips = AudioManifest(path, **kwargs) if Path(path).is_file() else AudioFolder(path, **kwargs)
    unlabelled = [f.name for f, t in zip(clips.files, clips.targets) if t < 0]
    if unlabelled:
        raise ValueError(
            f"--data.{role} {path}: {len(unlabelled)} clip(s) have no label (e.g. {unlabelled[0]}); the protocol "
            "needs a label for every clip: a class sub-folder, or the label column of a manifest"
        )
    return clips


def open_audio_data(data: AudioData, sample_rate: int) -> dict[str, AudioClips]:
    """The datasets of ``data`` at ``sample_rate`` (centre crops; nothing is decoded), after checking everything the
    protocol needs: ``{"fsdd": all FSDD clips}`` or ``{"train": ..., "test": ...}`` (test labels use the training
    classes' indices).

    Raises:
        FileNotFoundError: a folder or manifest is missing, or ``root`` holds no FSDD recording and no ``test``
            was given.
        ValueError: a clip without a label, a test class absent from training, fewer than two classes, or an
            FSDD copy without both splits or with one speaker only.
    """
    kwargs = dict(sample_rate=sample_rate, segment_seconds=data.segment_seconds, crop="center")
    if data.test is None:
        try:
            clips = FSDD(data.root, split="all", **kwargs)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"--data.root: {err}; for another labelled audio set give its training clips as "
                                    "--data.root and its test clips as --data.test (folders or manifests)") from err
        in_test = {i in FSDD.TEST_INDICES for i in clips.recording_index}
        if in_test != {True, False}:
            missing = "test (indices 0-4)" if True not in in_test else "training (indices 5-49)"
            raise ValueError(f"--data.root {clips.root}: no recording of FSDD's {missing} split")
        if len(set(clips.speakers_of)) < 2:
            raise ValueError(f"--data.root {clips.root}: one speaker only; leaving a speaker out needs two or more")
        return {"fsdd": clips}
    train, test = _open_clips(data.root, "root", **kwargs), _open_clips(data.test, "test", **kwargs)
    unknown = sorted(set(test.classes) - set(train.classes))
    if unknown:
        raise ValueError(f"--data.test {data.test}: classes {unknown} do not occur in --data.root {data.root}")
    if len(train.classes) < 2:
        raise ValueError(f"--data.root {data.root}: one class only ({train.classes}); a classifier needs two or more")
    test.targets = [train.classes.index(test.classes[t]) for t in test.targets]
    test.classes = list(train.classes)
    return {"train": train, "test": test}


def audio_protocol(
    encoders: dict[str, nn.Module],
    preprocess: LogMelPreprocess,
    data: AudioData,
    datasets: dict[str, AudioClips] | None = None,
    repeats: int = 5,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """The papers' protocol for ``encoders`` on ``data``: :func:`fsdd_comparison` on FSDD (``"kind": "fsdd"``),
    else :func:`clips_comparison` on the given split (``"kind": "clips"``).

    Args:
        datasets: ``open_audio_data(data, preprocess.sample_rate)`` when already opened (and checked).
    """
    datasets = datasets or open_audio_data(data, preprocess.sample_rate)
    if "fsdd" in datasets:
        return {"kind": "fsdd", **fsdd_comparison(encoders, preprocess, datasets["fsdd"].root, data.segment_seconds,
                                                   repeats, batch_size, num_workers, device, seed)}
    return {"kind": "clips", **clips_comparison(encoders, preprocess, datasets["train"], datasets["test"], repeats,
                                                batch_size, num_workers, device, seed)}


AUDIO_SPLITS = {"conventional": "conventional split", "speaker_held_out": "speaker held out",
                "given_split": "given split"}


def audio_summary(results: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of :func:`audio_protocol`'s results: ``{"<split> <encoder>": mean accuracy}``."""
    return {f"{split} {name}": r["accuracy"] for split in AUDIO_SPLITS if split in results
            for name, r in results[split].items()}


def print_audio_table(results: dict[str, Any], title: str, names: dict[str, str] | None = None) -> None:
    """One row per encoder (``names`` maps keys to display names), one column per split: mean ± std test accuracy
    of the papers' protocol, and the L-BFGS probe's where it ran."""
    splits = [s for s in AUDIO_SPLITS if s in results]
    table = Table(title=title)
    table.add_column("encoder")
    for split in splits:
        runs = len(next(iter(results[split].values())).get("runs", [])) or len(
            next(iter(results[split].values())).get("per_speaker", {}))
        table.add_column(f"{AUDIO_SPLITS[split]}\n(papers' protocol, {runs} runs)", justify="right")
        if split != "speaker_held_out":
            table.add_column(f"{AUDIO_SPLITS[split]}\n(L-BFGS probe)", justify="right")
    for name in results[splits[0]]:
        row = [(names or {}).get(name, name)]
        for split in splits:
            r = results[split][name]
            row.append(f"{r['accuracy']:.1f} ± {r['std']:.1f}")
            if split != "speaker_held_out":
                row.append(f"{r['lbfgs_accuracy']:.1f}")
        table.add_row(*row)
    Console().print(table)


def random_like(backbone: nn.Module, seed: int = 0) -> nn.Module:
    """A freshly initialised copy of ``backbone``'s architecture (rebuilt from ``export_config()``, seeded)."""
    config = {k: v for k, v in backbone.export_config().items() if k not in ("class", "num_features")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return type(backbone)(**config)


__all__ = [
    "AudioData", "AudioProbeResult", "ClipSegments", "FlattenedLogMel", "audio_linear_eval", "audio_protocol",
    "audio_summary", "clip_embeddings", "clips_comparison", "fit_linear_early_stopping", "fsdd_comparison",
    "linear_eval_embeddings", "log_mel_statistics", "open_audio_data", "print_audio_table", "random_like",
    "repeated_linear_eval", "segment_clip",
]
