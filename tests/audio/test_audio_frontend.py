"""The log-mel front end against a direct numpy computation, and its export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from byol.views.audio_frontend import LogMelPreprocess, LogMelSpectrogram

RATE, N_FFT, HOP, N_MELS, F_MIN, F_MAX = 16000, 1024, 160, 64, 60.0, 7800.0


def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney (Auditory Toolbox): linear below 1 kHz, logarithmic above
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + 27.0 * np.log(np.maximum(f, 1e-9) / 1000.0) / np.log(6.4))


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


def _filter_bank(scale: str, norm: str | None) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters on the FFT bin frequencies."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(F_MIN), scale), _hz_to_mel(np.array(F_MAX), scale),
                                   N_MELS + 2), scale)
    freqs = np.arange(N_FFT // 2 + 1) * RATE / N_FFT
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return fb * (2.0 / (hi - lo)) if norm == "slaney" else fb


def _log_mel_numpy(wave: np.ndarray, scale: str, norm: str | None) -> np.ndarray:
    """Reflect-padded frames, periodic Hann window, |rfft|^2, filter bank, log(. + eps): ``(n_mels, T)``."""
    padded = np.pad(wave, N_FFT // 2, mode="reflect")
    frames = np.stack([padded[i : i + N_FFT] for i in range(0, len(padded) - N_FFT + 1, HOP)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return np.log(_filter_bank(scale, norm) @ power.T + np.finfo(np.float32).eps)


@pytest.mark.parametrize("scale,norm", [("slaney", "slaney"), ("htk", None)])
def test_pure_tone_matches_a_direct_computation_and_peaks_in_its_mel_band(scale, norm):
    freq = 1000.0
    wave = 0.5 * np.sin(2 * np.pi * freq * np.arange(15200) / RATE)
    out = LogMelSpectrogram(mel_scale=scale, mel_norm=norm)(torch.from_numpy(wave).float()[None])
    assert out.shape == (1, 1, 64, 96) and out.dtype == torch.float32
    ref = _log_mel_numpy(wave, scale, norm)
    loud = ref > ref.max() - 20  # compare where there is energy (log of float32 round-off elsewhere)
    np.testing.assert_allclose(out[0, 0].numpy()[loud], ref[loud], atol=2e-3)
    centres = _mel_to_hz(np.linspace(_hz_to_mel(np.array(F_MIN), scale), _hz_to_mel(np.array(F_MAX), scale),
                                     N_MELS + 2), scale)[1:-1]
    expected = int(np.abs(centres - freq).argmin())
    assert out[0, 0, :, 5:-5].mean(1).argmax().item() == expected
    assert out[0, 0, expected, 48].item() == pytest.approx(float(ref[expected, 48]), abs=1e-3)


def test_frames_follow_the_hop_and_silence_is_log_eps():
    front = LogMelSpectrogram()
    assert front.num_frames(15200) == 96
    out = front(torch.zeros(2, 16000))
    assert out.shape == (2, 1, 64, 101)
    torch.testing.assert_close(out, torch.full_like(out, math.log(torch.finfo(torch.float32).eps)))


def test_the_front_end_runs_in_float32_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert LogMelSpectrogram()(torch.randn(1, 4000)).dtype == torch.float32


@pytest.mark.parametrize("bad", [torch.randn(3, 1, 4000), torch.randn(2, 400), torch.zeros(2, 4000, dtype=torch.int16)])
def test_bad_inputs_raise(bad):
    with pytest.raises(ValueError):
        LogMelSpectrogram()(bad)


def test_preprocess_normalises_and_rebuilds_from_its_json_config():
    pre = LogMelPreprocess(mean=-5.0, std=2.0, mel_scale="htk", mel_norm=None)
    x = torch.randn(2, 15200) * 0.1
    expected = (LogMelSpectrogram(mel_scale="htk", mel_norm=None)(x) + 5.0) / 2.0
    torch.testing.assert_close(pre(x), expected)
    config = json.loads(json.dumps(pre.export_config()))
    assert config["class"] == "LogMelPreprocess" and config["n_mels"] == 64 and config["f_max"] == 7800.0
    config.pop("class")
    torch.testing.assert_close(LogMelPreprocess(**config)(x), pre(x))
    assert LogMelPreprocess().state_dict() == {}  # window and filter bank are not checkpointed
