"""Map-style audio datasets that decode to fixed-length float waveforms (for BYOL-A, Niizumi et al. 2021 / 2023).

Every dataset yields ``(waveform, label)``: ``waveform`` is a float32 tensor of shape ``(segment_samples,)`` at
``sample_rate`` Hz (16 kHz by default), ``label`` an ``int`` (``-1`` for unlabeled clips). Decoding, in order:

1. read with soundfile (WAV, FLAC, OGG, and whatever else libsndfile reads) as float32 in ``[-1, 1]``;
2. mix down to mono: the mean over channels;
3. resample to ``sample_rate`` with torchaudio's band-limited sinc interpolation;
4. cut to ``segment_samples = round(segment_seconds * sample_rate)``: a clip that is longer is cropped
   (``crop="random"``: a uniformly random window, drawn from torch's RNG, the only randomness on the CPU;
   ``crop="center"``: the centre window, deterministic, for evaluation); a clip that is shorter is zero-padded
   on both sides (left ``(n - L) // 2``, right the rest).

Log-mel conversion and every augmentation happen later, batched on the device (:mod:`byol.views.audio`).
:meth:`AudioClips.load` gives the whole decoded clip (steps 1-3) for evaluation over full clips.

Bad files, each named in the message:

- **corrupt or unreadable** (libsndfile cannot decode it): ``ValueError``;
- **empty** (no samples) or holding NaN/inf samples: ``ValueError``;
- with ``on_corrupt="skip"``, the datasets decode every file once when they are built and drop the ones above
  (and missing ones), listed in ``skipped`` and reported with a warning, as the image datasets do; a WAV cut
  short inside its samples is not corrupt to libsndfile: it decodes to the samples that are there;
- **too short** (fewer samples than a segment): zero-padded on both sides, as above (documented fallback);
- **stereo / multichannel**: mixed down to mono (documented fallback);
- **silent** (every sample exactly 0): loaded, with a ``UserWarning`` (its log-mel is the constant ``log(eps)``);
- **clipped** (more than ``clip_fraction`` of the samples at full scale, ``|x| >= 0.999``): loaded, with a
  ``UserWarning``.

Datasets hold only paths and labels, so they are cheap to pickle into DataLoader workers.
"""

from __future__ import annotations

import csv
import functools
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from torchaudio.transforms import Resample
from tqdm.auto import tqdm

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg")
FULL_SCALE = 0.999  # a sample at or above this magnitude counts as clipped

Crop = Literal["random", "center"]


def read_audio(path: Path, sample_rate: int, clip_fraction: float = 0.01) -> torch.Tensor:
    """Decode ``path`` to a mono float32 waveform ``(L,)`` at ``sample_rate`` Hz (see the module docstring)."""
    wave, rate = _decode(path, clip_fraction)
    return _resampler(rate, sample_rate)(wave) if rate != sample_rate else wave


def _decode(path: Path, clip_fraction: float) -> tuple[torch.Tensor, int]:
    """Steps 1-2 of the module docstring: ``(mono float32 waveform (L,), its sample rate)``; the bad-file checks."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except (RuntimeError, OSError) as err:  # soundfile.LibsndfileError is a RuntimeError
        raise ValueError(f"{path}: cannot decode audio (corrupt or unsupported file): {err}") from err
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: the file holds NaN or infinite samples")
    if not data.any():
        warnings.warn(f"{path}: the clip is silent (all samples are 0)", stacklevel=3)
    elif (np.abs(data) >= FULL_SCALE).mean() > clip_fraction:
        warnings.warn(f"{path}: the clip is clipped (over {clip_fraction:.0%} of samples at full scale)", stacklevel=3)
    return torch.from_numpy(data.mean(axis=1)), rate


@functools.lru_cache(maxsize=16)
def _resampler(orig_freq: int, new_freq: int) -> Resample:
    """torchaudio's sinc resampler between two rates; its kernel is computed once per pair (and process)."""
    return Resample(orig_freq, new_freq)


def fit_length(wave: torch.Tensor, length: int, crop: Crop) -> torch.Tensor:
    """Cut ``(L,)`` to ``(length,)``: random or centre crop when longer, zero padding on both sides when shorter."""
    excess = wave.shape[0] - length
    if excess > 0:
        start = int(torch.randint(0, excess + 1, ())) if crop == "random" else excess // 2
        return wave[start : start + length]
    if excess < 0:
        left = -excess // 2
        return torch.nn.functional.pad(wave, (left, -excess - left))
    return wave


class AudioClips(Dataset[tuple[torch.Tensor, int]]):
    """Audio files with labels, decoded to fixed-length waveform segments.

    Subclasses fill ``files``, ``targets`` and ``classes``, then call :meth:`_drop_corrupt`; the attributes
    named in ``per_clip`` hold one entry per clip.

    Args:
        sample_rate: output sample rate in Hz.
        segment_seconds: segment length in seconds (BYOL-A: 0.95 s, i.e. 96 log-mel frames at hop 10 ms).
        crop: ``"random"`` (training) or ``"center"`` (evaluation) window of clips longer than a segment.
        clip_fraction: fraction of full-scale samples above which a clip is reported as clipped.
        on_corrupt: ``"raise"``: a file that is missing or fails to decode (corrupt, empty, NaN/inf samples)
            raises ``ValueError`` (``FileNotFoundError`` when missing) naming the file when it is loaded.
            ``"skip"``: every file is decoded once at construction; the ones that fail are dropped (with their
            labels), listed in ``skipped`` and reported with one warning; when none decodes, ``ValueError``.

    Attributes:
        files: audio file paths, in sample order.
        targets: labels in ``[0, len(classes))``, ``-1`` for unlabeled clips.
        classes: class names (a class whose files were all skipped stays, so labels keep their meaning).
        segment_samples: samples per segment.
        skipped: files dropped because they failed to decode (``"skip"`` only).
    """

    files: list[Path]
    targets: list[int]
    classes: list[str]
    per_clip: tuple[str, ...] = ("files", "targets")

    def __init__(
        self,
        sample_rate: int = 16000,
        segment_seconds: float = 0.95,
        crop: Crop = "random",
        clip_fraction: float = 0.01,
        on_corrupt: Literal["raise", "skip"] = "raise",
    ) -> None:
        if crop not in ("random", "center"):
            raise ValueError(f"crop must be 'random' or 'center', got {crop!r}")
        if on_corrupt not in ("raise", "skip"):
            raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")
        if sample_rate <= 0 or segment_seconds <= 0:
            raise ValueError(f"sample_rate and segment_seconds must be positive, got {sample_rate}, {segment_seconds}")
        self.sample_rate = sample_rate
        self.segment_seconds = segment_seconds
        self.segment_samples = round(segment_seconds * sample_rate)
        self.crop: Crop = crop
        self.clip_fraction = clip_fraction
        self.on_corrupt = on_corrupt
        self.skipped: list[Path] = []

    def _drop_corrupt(self, where: str) -> None:
        """With ``on_corrupt="skip"``, decode every file once; drop (and warn about) the ones that fail.

        ``where`` says where the files come from in the messages (``"under ROOT"``, ``"listed in MANIFEST"``).
        """
        if self.on_corrupt != "skip":
            return
        keep = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # silent or clipped clips are reported when they are loaded
            for i, path in enumerate(tqdm(self.files, desc=f"Checking audio files {where}", unit="file")):
                try:
                    _decode(path, self.clip_fraction)
                except (ValueError, OSError):
                    self.skipped.append(path)
                else:
                    keep.append(i)
        if not self.skipped:
            return
        if not keep:
            raise ValueError(f"none of the {len(self.files)} audio files {where} could be decoded")
        for name in self.per_clip:
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])
        shown = ", ".join(p.name for p in self.skipped[:5])
        more = ", ..." if len(self.skipped) > 5 else ""
        warnings.warn(
            f"skipped {len(self.skipped)} audio file(s) {where} that failed to decode: {shown}{more}", stacklevel=3
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> torch.Tensor:
        """The whole decoded clip ``(L,)``: mono, float32, at ``sample_rate`` Hz, not cut."""
        try:
            return read_audio(self.files[index], self.sample_rate, self.clip_fraction)
        except (ValueError, FileNotFoundError) as err:
            kind = FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError
            raise kind(f"{err}; replace or remove the file, or set on_corrupt: skip") from err

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(waveform (segment_samples,) float32, label)``."""
        return fit_length(self.load(index), self.segment_samples, self.crop), self.targets[index]


def _class_index(labels: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """Sorted class names (numerically when every label is an integer) and the name -> index map."""
    names = sorted(set(labels))
    if names and all(re.fullmatch(r"-?\d+", n) for n in names):
        names.sort(key=int)
    return names, {n: i for i, n in enumerate(names)}


class AudioFolder(AudioClips):
    """The audio files under ``root`` (searched recursively, sorted by path).

    Labels come from the top-level sub-folder: ``root/<class>/**/x.wav`` gets the index of ``<class>`` among the
    sorted names of such folders; files directly in ``root`` are unlabeled (``-1``).

    Args:
        root: the folder.
        extensions: file suffixes to include (case-insensitive).
        kwargs: ``sample_rate``, ``segment_seconds``, ``crop``, ``clip_fraction``, ``on_corrupt`` of
            :class:`AudioClips`.

    Raises:
        FileNotFoundError: ``root`` is not a folder or holds no audio file.
        ValueError: with ``on_corrupt="skip"``, none of the files could be decoded.
    """

    def __init__(
        self,
        root: str | Path,
        extensions: Sequence[str] = AUDIO_EXTENSIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"audio folder not found: {self.root}")
        suffixes = {e.lower() for e in extensions}
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        if not self.files:
            raise FileNotFoundError(f"no audio files ({', '.join(sorted(suffixes))}) under {self.root}")
        folders = [p.relative_to(self.root).parts[0] if len(p.relative_to(self.root).parts) > 1 else None
                   for p in self.files]
        self.classes, index = _class_index([f for f in folders if f is not None])
        self.targets = [-1 if f is None else index[f] for f in folders]
        self._drop_corrupt(f"under {self.root}")


class AudioManifest(AudioClips):
    """The audio files listed in a CSV manifest, one ``path[,label]`` row per clip.

    Relative paths are relative to the manifest's folder. A first row ``path`` or ``path,label`` is a header.
    Labels are class names; classes are their sorted set (numeric order when all are integers). A row without
    a label (or with an empty one) is unlabeled (``-1``).

    Args:
        manifest: the CSV file.
        kwargs: ``sample_rate``, ``segment_seconds``, ``crop``, ``clip_fraction``, ``on_corrupt`` of
            :class:`AudioClips`.

    Raises:
        FileNotFoundError: the manifest is missing.
        ValueError: a row has more than two fields or an empty path, or the manifest lists no file; with
            ``on_corrupt="skip"``, none of the listed files could be decoded.
    """

    def __init__(
        self,
        manifest: str | Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = Path(manifest)
        if not self.manifest.is_file():
            raise FileNotFoundError(f"manifest not found: {self.manifest}")
        with open(self.manifest, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0]] in (["path"], ["path", "label"]):
            rows = rows[1:]
        paths, labels = [], []
        for line, row in enumerate(rows, start=1):
            if len(row) > 2 or not row[0].strip():
                raise ValueError(f"{self.manifest}: row {line} must be 'path[,label]', got {row}")
            path = Path(row[0].strip())
            paths.append(path if path.is_absolute() else self.manifest.parent / path)
            labels.append(row[1].strip() if len(row) == 2 else "")
        if not paths:
            raise ValueError(f"{self.manifest}: lists no audio file")
        self.files = paths
        self.classes, index = _class_index([label for label in labels if label])
        self.targets = [index[label] if label else -1 for label in labels]
        self._drop_corrupt(f"listed in {self.manifest}")


FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)\.wav")


class FSDD(AudioClips):
    """The Free Spoken Digit Dataset: 3,000 recordings ``{digit}_{speaker}_{index}.wav`` (8 kHz, 6 speakers).

    The conventional split: indices 0-4 are the test set (300 clips), 5-49 the training set (2,700).

    Args:
        root: the ``recordings`` folder or its parent.
        split: ``"train"`` (indices 5-49), ``"test"`` (0-4) or ``"all"``.
        speakers: keep only these speakers (``None``: all); with ``exclude_speakers``, the speaker-held-out splits.
        exclude_speakers: drop these speakers.
        kwargs: ``sample_rate``, ``segment_seconds``, ``crop``, ``clip_fraction``, ``on_corrupt`` of
            :class:`AudioClips`.

    Attributes:
        classes: ``"0"`` ... ``"9"``; the label is the spoken digit.
        speakers_of: the speaker of every clip, in sample order.
        recording_index: the ``{index}`` of every clip's file name (0-4: conventional test split).

    Raises:
        FileNotFoundError: ``root`` holds no FSDD recordings.
        ValueError: no recording is left with the speakers asked for, or, with ``on_corrupt="skip"``, none of
            them could be decoded.
    """

    TEST_INDICES = range(0, 5)
    per_clip = ("files", "targets", "speakers_of", "recording_index")

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test", "all"] = "train",
        speakers: Sequence[str] | None = None,
        exclude_speakers: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        root = Path(root)
        self.root = root / "recordings" if (root / "recordings").is_dir() else root
        entries = []
        for path in sorted(self.root.glob("*.wav")) if self.root.is_dir() else []:
            match = FSDD_NAME.fullmatch(path.name)
            if match is None:
                continue
            test = int(match["index"]) in self.TEST_INDICES
            if split == "all" or (split == "test") == test:
                entries.append((path, int(match["digit"]), match["speaker"], int(match["index"])))
        if not entries:
            raise FileNotFoundError(f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) in {self.root}")
        keep = set(speakers) if speakers is not None else {e[2] for e in entries}
        entries = [e for e in entries if e[2] in keep and e[2] not in set(exclude_speakers)]
        if not entries:
            raise ValueError(f"{self.root}: no recording left with speakers={speakers}, exclude={exclude_speakers}")
        self.split = split
        self.files = [e[0] for e in entries]
        self.targets = [e[1] for e in entries]
        self.speakers_of = [e[2] for e in entries]
        self.recording_index = [e[3] for e in entries]
        self.classes = [str(d) for d in range(10)]
        self._drop_corrupt(f"under {self.root}")
