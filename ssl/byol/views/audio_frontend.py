"""The BYOL-A log-mel front end, batched on the device: waveforms to log-mel spectrograms.

BYOL-A (Niizumi et al. 2021, "BYOL for Audio: Self-Supervised Learning for General-Purpose Audio Representation",
IJCNN, arXiv:2103.06695; Niizumi et al. 2023, "BYOL for Audio: Exploring Pre-Trained General-Purpose Audio
Representations", IEEE/ACM TASLP, arXiv:2204.07402) converts 16 kHz audio with an STFT of
window and FFT size 1024 (64 ms) and hop 160 (10 ms), a 64-band mel filter bank from 60 to 7800 Hz, and the
natural log of ``mel + eps``: a 0.95 s segment (15,200 samples) gives 96 frames.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torchaudio.functional as AF
from torch import Tensor, nn

EPS = float(torch.finfo(torch.float32).eps)


class LogMelSpectrogram(nn.Module):
    """Waveforms ``(B, L)`` to log-mel spectrograms ``(B, 1, n_mels, L // hop_length + 1)``, float32.

    Power STFT (periodic Hann window of ``win_length`` samples, centred frames with reflect padding, as
    torchaudio, librosa and nnAudio do by default), a mel filter bank, then ``log(mel + eps)`` with ``eps`` the
    float32 machine epsilon. Runs in float32 also under ``torch.autocast``.

    The default filter bank is librosa's (Slaney mel scale, area-normalised triangles), which the weights
    released with both papers were trained with (librosa for v1, nnAudio with librosa's filters for v2);
    ``mel_scale="htk", mel_norm=None`` gives torchaudio's default bank used by the public v1 training code.

    Args:
        sample_rate: input sample rate in Hz.
        n_fft: FFT size; ``n_fft // 2 + 1`` frequency bins.
        win_length: window length in samples (``<= n_fft``).
        hop_length: frame shift in samples.
        n_mels: mel bands ``F``.
        f_min, f_max: frequency range of the filter bank in Hz.
        mel_scale: ``"slaney"`` or ``"htk"``.
        mel_norm: ``"slaney"`` (each triangle has unit area in Hz) or ``None`` (unit peak).

    The window and filter bank are non-persistent buffers: they follow the module's device and add nothing to
    checkpoints.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 60.0,
        f_max: float = 7800.0,
        mel_scale: Literal["slaney", "htk"] = "slaney",
        mel_norm: Literal["slaney"] | None = "slaney",
    ) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}, {sample_rate}")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.f_min, self.f_max = n_mels, float(f_min), float(f_max)
        self.mel_scale, self.mel_norm = mel_scale, mel_norm
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)
        fb = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm=mel_norm, mel_scale=mel_scale)
        self.register_buffer("filter_bank", fb.T.contiguous(), persistent=False)  # (n_mels, n_fft // 2 + 1)

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable)."""
        return {
            "sample_rate": self.sample_rate, "n_fft": self.n_fft, "win_length": self.win_length,
            "hop_length": self.hop_length, "n_mels": self.n_mels, "f_min": self.f_min, "f_max": self.f_max,
            "mel_scale": self.mel_scale, "mel_norm": self.mel_norm,
        }

    def num_frames(self, num_samples: int) -> int:
        """Frames ``T`` of a waveform of ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def forward(self, waveforms: Tensor) -> Tensor:
        if waveforms.ndim != 2 or not waveforms.is_floating_point():
            raise ValueError(f"expected float waveforms of shape (B, L), got {waveforms.dtype} {tuple(waveforms.shape)}")
        if waveforms.shape[1] <= self.n_fft // 2:
            raise ValueError(f"waveforms of {waveforms.shape[1]} samples are too short for n_fft={self.n_fft}")
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            spec = torch.stft(
                waveforms.float(), self.n_fft, self.hop_length, self.win_length, self.window,
                center=True, pad_mode="reflect", return_complex=True,
            )  # (B, n_fft // 2 + 1, T)
            mel = torch.matmul(self.filter_bank, spec.real.square() + spec.imag.square())  # (B, n_mels, T)
            return torch.log(mel + EPS).unsqueeze(1)


class LogMelPreprocess(nn.Module):
    """What an exported BYOL-A backbone expects: waveforms ``(B, L)`` to normalised log-mels ``(B, 1, F, T)``.

    :class:`LogMelSpectrogram` followed by ``(x - mean) / std`` with fixed statistics: the pre-normalisation of
    the run that trained the backbone, or of the downstream training set.

    Args:
        mean, std: the statistics (keyword-only; ``std > 0``).
        front_end: :class:`LogMelSpectrogram`'s arguments (``sample_rate``, ``n_fft``, ..., ``mel_norm``), by
            keyword.
    """

    def __init__(self, *, mean: float = 0.0, std: float = 1.0, **front_end: Any) -> None:
        super().__init__()
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.front_end = LogMelSpectrogram(**front_end)
        self.mean, self.std = float(mean), float(std)

    @property
    def sample_rate(self) -> int:
        return self.front_end.sample_rate

    def forward(self, waveforms: Tensor) -> Tensor:
        return (self.front_end(waveforms) - self.mean) / self.std

    def export_config(self) -> dict[str, Any]:
        """Arguments that rebuild this transform (stored in an exported backbone's config.json)."""
        return {"class": "LogMelPreprocess", **self.front_end.settings(), "mean": self.mean, "std": self.std}
