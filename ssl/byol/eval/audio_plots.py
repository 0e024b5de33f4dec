"""A figure of what BYOL-A's augmentations do: the log-mel of a clip and two augmented views of it, as PNG.

Drawn on its own ``matplotlib.figure.Figure`` with an Agg canvas (nothing touches pyplot's global state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from ..data.audio import fit_length, read_audio
from ..views.audio import BYOLAViews, BYOLAv1Views
from ..views.audio_norm import DatasetNorm, log_mel_moments

_DPI = 150


def plot_log_mel_views(
    log_mel: Tensor,
    views: Sequence[Tensor],
    out: str | Path,
    hop_seconds: float = 0.01,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
) -> Path:
    """Draw a log-mel ``(F, T)`` and its views ``(F, T)`` side by side, on one colour scale, to a PNG.

    Args:
        log_mel: the (pre-normalised) log-mel of the clip.
        views: its augmented views, same shape.
        out: PNG path (folders are created).
        hop_seconds: frame shift, for the time axis.
        titles: one per panel (default: "log-mel", "view 1", "view 2", ...).
    """
    panels = [log_mel, *views]
    if any(p.ndim != 2 for p in panels):
        raise ValueError(f"expected (F, T) spectrograms, got shapes {[tuple(p.shape) for p in panels]}")
    titles = list(titles) if titles is not None else ["log-mel"] + [f"view {i + 1}" for i in range(len(views))]
    data = [p.detach().float().cpu() for p in panels]
    vmin, vmax = min(d.min().item() for d in data), max(d.max().item() for d in data)
    fig = Figure(figsize=(4.2 * len(data), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(data), sharey=True)
    for ax, d, title in zip(axes, data, titles):
        image = ax.imshow(d.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0, d.shape[1] * hop_seconds, 0, d.shape[0]))
        ax.set_title(title)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("mel band")
    fig.colorbar(image, ax=list(axes), label="normalised log power")
    if suptitle:
        fig.suptitle(suptitle)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, format="png")
    return path


@torch.no_grad()
def plot_audio_views(
    audio: str | Path,
    out: str | Path,
    version: Literal["v1", "v2"] = "v2",
    background: Sequence[str | Path] = (),
    seed: int = 0,
) -> Path:
    """``byol plot-views``: the log-mel of an audio file's centre segment and two BYOL-A views of it, as PNG.

    The views come from the paper's pipeline (:class:`BYOLAViews` for v2, :class:`BYOLAv1Views` for v1).
    Pre-normalisation uses the statistics of the clip and the ``background`` clips; the background clips fill
    the mixup memory (without any, mixup has nothing to mix with, as at the first step of training). The
    panels show the pre-normalised log-mel and the post-normalised views.

    Args:
        audio: the clip (any format soundfile reads; resampled to 16 kHz, mixed to mono).
        out: PNG to write.
        version: which paper's augmentations.
        background: clips to mix with.
        seed: seed of the random augmentation parameters.
    """
    views: BYOLAViews = BYOLAv1Views(pre_norm="dataset") if version == "v1" else BYOLAViews()
    rate, n = views.front_end.sample_rate, views.segment_samples
    waves = torch.stack([fit_length(read_audio(Path(p), rate), n, "center") for p in [audio, *background]])
    log_mels = views.log_mel(waves)
    norm = views.pre_norm
    assert isinstance(norm, DatasetNorm)
    norm.set_from_moments(log_mel_moments(log_mels))
    x = norm(log_mels)
    if views.mixup is not None and len(background):
        views.mixup.remember(x[1:])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        v1, v2 = views.augment(x[:1]), views.augment(x[:1])
    both = views.post_norm(torch.cat([v1, v2]))
    mixing = f"mixup with {len(background)} background clip(s)" if len(background) else "no background: no mixup"
    return plot_log_mel_views(
        x[0, 0], [both[0, 0], both[1, 0]], out, views.front_end.hop_length / rate,
        suptitle=f"BYOL-A {version} views of {Path(audio).name} ({mixing})",
    )
