"""The weights released with the BYOL-A papers as an exported backbone folder that ``byol.load_backbone`` reads.

The papers' ``.pth`` files (``AudioNTT2020-BYOLA-64x96d{512,1024,2048}.pth``, ``AudioNTT2022-BYOLA-64x96d2048.pth``)
hold the encoder's state dict only; the architecture follows from its shapes
(:func:`byol.models.audio_ntt.from_paper_state_dict`). The folder's ``config.json`` adds the papers' log-mel
settings (16 kHz, FFT 1024, hop 160, 64 mels, 60-7800 Hz, librosa's Slaney filter bank) and pre-normalisation
statistics, which the papers compute on each downstream training set (``byol.eval.audio.audio_linear_eval``
does so again by default).
"""

from __future__ import annotations

from pathlib import Path

from ..data.audio import AudioFolder
from ..export import export_backbone
from ..models.audio_ntt import from_paper_weights
from ..views.audio_frontend import LogMelPreprocess
from .audio import log_mel_statistics


def import_paper_weights(weights: str | Path, out_dir: str | Path, mean: float, std: float) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` from a BYOL-A ``.pth`` file.

    Args:
        weights: the released ``.pth`` (read with ``weights_only=True``).
        out_dir: folder to write.
        mean, std: log-mel statistics for the pre-normalisation (e.g. those of the target data set,
            :func:`byol.eval.audio.log_mel_statistics`).

    Returns:
        ``out_dir``; ``byol.load_backbone(out_dir)`` and ``byol.load_preprocess(out_dir)`` then load it.
    """
    backbone = from_paper_weights(weights)
    preprocessing = LogMelPreprocess(mean=mean, std=std).export_config()
    return export_backbone(backbone, out_dir, preprocessing, method="BYOLA", source=str(weights))


def folder_statistics(folder: str | Path, preprocess: LogMelPreprocess | None = None,
                      segment_seconds: float = 0.95) -> tuple[float, float]:
    """Log-mel ``(mean, std)`` over every audio file under ``folder``, for :func:`import_paper_weights`.

    Each file is cut into ``segment_seconds`` segments (the papers' 0.95 s, 96 frames) that cover it
    (:func:`byol.eval.audio.segment_clip`); the statistics are those of every log-mel value of the segments
    (:func:`byol.eval.audio.log_mel_statistics`), with ``preprocess``'s front end (default: the papers' settings).
    """
    front_end = (preprocess or LogMelPreprocess()).front_end
    clips = AudioFolder(folder, sample_rate=front_end.sample_rate, segment_seconds=segment_seconds, crop="center")
    return log_mel_statistics(front_end, clips)
