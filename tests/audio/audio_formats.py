"""Writers of tiny audio data sets on disk, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def write_audio_folder(
    root: Path,
    digits: tuple[int, ...] = (0, 1),
    speakers: tuple[str, ...] = ("alice", "bob"),
    indices: tuple[int, ...] = (0, 5, 6),
    sample_rate: int = 8000,
    seconds: float = 0.3,
) -> Path:
    """``root/{digit}_{speaker}_{index}.wav``: short PCM16 mono tones plus noise, named as FSDD's recordings.

    :class:`byol.data.audio.FSDD` reads them as labelled clips (index 0-4: test split, 5-49: train split),
    :class:`byol.data.audio.AudioFolder` as unlabeled clips. The defaults give 8 training and 4 test clips.
    """
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    for digit in digits:
        for s, speaker in enumerate(speakers):
            for index in indices:
                tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * digit + 20 * s) * t)
                wave = tone + 0.01 * rng.standard_normal(t.shape)
                sf.write(root / f"{digit}_{speaker}_{index}.wav", wave.astype(np.float32), sample_rate, subtype="PCM_16")
    return root


def paper_state(convs: list[int], fc: list[tuple[int, int]], channels: int = 64) -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes of the BYOL-A papers' released ``.pth`` files, random values.

    ``convs``: indices of the conv layers in ``features`` (each followed by its BatchNorm); ``fc``: ``(out, in)`` of
    ``fc.0`` and ``fc.3``.
    """
    g = torch.Generator().manual_seed(0)
    state = {}
    for n, i in enumerate(convs):
        state[f"features.{i}.weight"] = torch.randn(channels, 1 if n == 0 else channels, 3, 3, generator=g) * 0.1
        state[f"features.{i}.bias"] = torch.randn(channels, generator=g) * 0.1
        bn = f"features.{i + 1}"
        state[f"{bn}.weight"] = torch.rand(channels, generator=g) + 0.5
        state[f"{bn}.bias"] = torch.randn(channels, generator=g) * 0.1
        state[f"{bn}.running_mean"] = torch.randn(channels, generator=g) * 0.1
        state[f"{bn}.running_var"] = torch.rand(channels, generator=g) + 0.5
        state[f"{bn}.num_batches_tracked"] = torch.tensor(1000)
    for i, (out, inp) in zip((0, 3), fc):
        state[f"fc.{i}.weight"] = torch.randn(out, inp, generator=g) * 0.02
        state[f"fc.{i}.bias"] = torch.randn(out, generator=g) * 0.02
    return state


V1_512 = dict(convs=[0, 4, 8], fc=[(512, 512), (512, 512)])  # AudioNTT2020-BYOLA-64x96d512.pth
V2_3072 = dict(convs=[0, 4], fc=[(2048, 1024), (2048, 2048)])  # AudioNTT2022-BYOLA-64x96d2048.pth
