"""The plot of a log-mel and its two BYOL-A views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from audio_formats import write_audio_folder
from matplotlib.image import imread

from byol.eval.audio_plots import plot_audio_views, plot_log_mel_views


def test_plot_of_three_spectrograms_is_a_png(tmp_path):
    out = plot_log_mel_views(torch.randn(64, 96), [torch.randn(64, 96), torch.randn(64, 96)], tmp_path / "a" / "v.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(out)
    assert image.shape[1] > 2.5 * image.shape[0]  # three panels side by side
    with pytest.raises(ValueError, match="spectrograms"):
        plot_log_mel_views(torch.randn(64, 96), [torch.randn(1, 64, 96)], tmp_path / "bad.png")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_plot_views_of_an_audio_file(tmp_path, version):
    files = sorted(write_audio_folder(tmp_path / "audio").glob("*.wav"))
    out = plot_audio_views(files[0], tmp_path / f"{version}.png", version=version, background=files[1:4])
    image = imread(out)
    assert image.ndim == 3 and np.ptp(image[..., :3]) > 0
