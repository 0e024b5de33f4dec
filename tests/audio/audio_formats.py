"""Writers of tiny audio data sets on disk, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


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
