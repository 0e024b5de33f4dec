"""The BYOL-A audio encoders: AudioNTT2020 (v1) and AudioNTT2022 (v2), log-mels ``(B, 1, F, T)`` to ``(B, d)``.

AudioNTT2020 (Niizumi et al. 2021, arXiv:2103.06695, after Koizumi et al. 2020, "The NTT DCASE2020 challenge
task 6 system", arXiv:2007.00225): three blocks of 3x3 convolution (64 channels) - BatchNorm - ReLU - 2x2
max-pool, then per frame an MLP ``Linear(64 * F / 8, d) - ReLU - Dropout(0.3) - Linear(d, d) - ReLU``, then
temporal pooling ``max_t + mean_t``. ``d`` is 512, 1024 or 2048 in the paper.

AudioNTT2022 (Niizumi et al. 2023, arXiv:2204.07402): two conv blocks, an MLP of hidden size 2048 per frame,
and the concatenation of each frame's conv features (``64 * F / 4 = 1024``) with the MLP's output (2048) before
the same pooling: ``d = 3072``.

The module layout (``features.<i>`` for the conv stack, ``fc.<i>`` for the MLP) is that of the weights released
with the papers, so they load strictly (:func:`paper_state_dict`, :func:`from_paper_weights`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .state import strict_load


def conv_stack(blocks: int, channels: int = 64) -> nn.Sequential:
    """``blocks`` x (Conv2d 3x3 pad 1 - BatchNorm2d - ReLU - MaxPool2d 2): ``(B, 1, F, T) -> (B, C, F/2^n, T/2^n)``."""
    layers: list[nn.Module] = []
    for i in range(blocks):
        layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, stride=1, padding=1), nn.BatchNorm2d(channels),
                   nn.ReLU(), nn.MaxPool2d(2, stride=2)]
    return nn.Sequential(*layers)


def frame_mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear - ReLU - Dropout(0.3) - Linear - ReLU``, applied to every frame ``(B, T, in_dim)``."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(p=0.3), nn.Linear(hidden_dim, out_dim),
                         nn.ReLU())


def mean_max_pool(frames: Tensor) -> Tensor:
    """BYOL-A's temporal pooling: ``max_t + mean_t`` of ``(B, T, D)`` frame embeddings, ``(B, D)``."""
    return frames.max(dim=1).values + frames.mean(dim=1)


class _AudioNTT(nn.Module):
    """Shared parts: the conv stack ``features``, the per-frame MLP ``fc``, pooling and export."""

    features: nn.Sequential
    fc: nn.Sequential
    num_features: int
    n_mels: int
    blocks: int

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels or x.shape[3] < 2**self.blocks:
            raise ValueError(f"{type(self).__name__} expects log-mels (B, 1, {self.n_mels}, T >= {2**self.blocks}), "
                             f"got {tuple(x.shape)}")

    def conv_frames(self, x: Tensor) -> Tensor:
        """Conv features per frame, ``(B, 1, F, T) -> (B, T', F' * C)`` (frequency-major, as the papers' code)."""
        self._check(x)
        x = self.features(x)  # (B, C, F', T')
        b, c, f, t = x.shape
        return x.permute(0, 3, 2, 1).reshape(b, t, f * c)

    def frame_embeddings(self, x: Tensor) -> Tensor:
        """Embeddings per frame ``(B, T', d)`` before temporal pooling."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Map log-mels ``(B, 1, F, T)`` to clip embeddings ``(B, d)``."""
        return mean_max_pool(self.frame_embeddings(x))

    def export_state_dict(self) -> dict[str, Tensor]:
        """Weights under the papers' key names (``features.<i>.*``, ``fc.<i>.*``)."""
        return self.state_dict()

    def load_export_state_dict(self, state: dict[str, Tensor]) -> None:
        """Strictly load weights written by :meth:`export_state_dict` or released with the papers."""
        strict_load(self, state, "the exported weights")


class AudioNTT2020(_AudioNTT):
    """BYOL-A v1's encoder: log-mels ``(B, 1, F, T)`` to ``(B, d)`` (see the module docstring).

    Args:
        n_mels: mel bands ``F`` (a multiple of 8).
        d: embedding dimension (paper: 512, 1024, 2048).
        channels: conv channels (paper: 64; a narrower stack is cheaper on a CPU).
    """

    blocks = 3

    def __init__(self, n_mels: int = 64, d: int = 512, channels: int = 64) -> None:
        super().__init__()
        if n_mels % 2**self.blocks:
            raise ValueError(f"n_mels must be a multiple of {2**self.blocks}, got {n_mels}")
        self.n_mels, self.d, self.channels = n_mels, d, channels
        self.features = conv_stack(self.blocks, channels)
        self.fc = frame_mlp(channels * (n_mels // 2**self.blocks), d, d)
        self.num_features = d

    def frame_embeddings(self, x: Tensor) -> Tensor:
        return self.fc(self.conv_frames(x))

    def export_config(self) -> dict[str, Any]:
        """Arguments that rebuild this architecture (used by backbone export)."""
        return {"class": "AudioNTT2020", "n_mels": self.n_mels, "d": self.d, "channels": self.channels,
                "num_features": self.num_features}


class AudioNTT2022(_AudioNTT):
    """BYOL-A v2's encoder: log-mels ``(B, 1, F, T)`` to ``(B, d)`` (see the module docstring).

    Args:
        n_mels: mel bands ``F`` (a multiple of 4).
        d: embedding dimension: conv features per frame (``channels * F / 4``) plus the MLP's output (paper: 3072).
        mlp_hidden_d: hidden size of the per-frame MLP (paper: 2048).
        channels: conv channels (paper: 64).
    """

    blocks = 2

    def __init__(self, n_mels: int = 64, d: int = 3072, mlp_hidden_d: int = 2048, channels: int = 64) -> None:
        super().__init__()
        if n_mels % 2**self.blocks:
            raise ValueError(f"n_mels must be a multiple of {2**self.blocks}, got {n_mels}")
        conv_d = channels * (n_mels // 2**self.blocks)
        if d <= conv_d:
            raise ValueError(f"d ({d}) must exceed the conv features per frame ({conv_d})")
        self.n_mels, self.d, self.mlp_hidden_d, self.channels = n_mels, d, mlp_hidden_d, channels
        self.features = conv_stack(self.blocks, channels)
        self.fc = frame_mlp(conv_d, mlp_hidden_d, d - conv_d)
        self.num_features = d

    def frame_embeddings(self, x: Tensor) -> Tensor:
        frames = self.conv_frames(x)
        return torch.cat([frames, self.fc(frames)], dim=-1)

    def export_config(self) -> dict[str, Any]:
        """Arguments that rebuild this architecture (used by backbone export)."""
        return {"class": "AudioNTT2022", "n_mels": self.n_mels, "d": self.d, "mlp_hidden_d": self.mlp_hidden_d,
                "channels": self.channels, "num_features": self.num_features}


_PAPER_KEY = re.compile(r"(?:^|\.)((?:features|fc)\.\d+\..+)$")


def paper_state_dict(state: dict[str, Any]) -> dict[str, Tensor]:
    """The encoder weights of a BYOL-A checkpoint, under the keys ``features.<i>.*`` and ``fc.<i>.*``.

    Accepts the released ``.pth`` files (a plain state dict), or a dict holding one under ``"state_dict"`` or
    ``"model"``; any prefix before ``features.`` / ``fc.`` (``"model."``, ``"learner.net."``) is dropped and
    every other key (projector, predictor, target network) is left out, as the papers' loaders do.
    """
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        match = _PAPER_KEY.search(key)
        if match and not re.search(r"(target|projector|predictor)", key):
            out[match.group(1)] = value
    if not out:
        raise ValueError("no 'features.*' or 'fc.*' weights found: not a BYOL-A encoder checkpoint")
    return out


def from_paper_state_dict(state: dict[str, Tensor]) -> AudioNTT2020 | AudioNTT2022:
    """Build the encoder that ``state`` (see :func:`paper_state_dict`) describes and load it strictly.

    The architecture follows from the shapes: two conv blocks make an AudioNTT2022, three an AudioNTT2020;
    ``n_mels``, ``d`` and the MLP size come from the first and last linear layers.
    """
    state = paper_state_dict(state)
    convs = sorted(int(k.split(".")[1]) for k, v in state.items() if k.endswith(".weight") and v.ndim == 4)
    if "fc.0.weight" not in state or "fc.3.weight" not in state or not convs:
        raise ValueError(f"not an AudioNTT encoder: keys {sorted(state)[:8]}...")
    channels = state[f"features.{convs[0]}.weight"].shape[0]
    hidden, conv_d = state["fc.0.weight"].shape
    out = state["fc.3.weight"].shape[0]
    n_mels = conv_d // channels * 2 ** len(convs)
    if len(convs) == 3:
        model: AudioNTT2020 | AudioNTT2022 = AudioNTT2020(n_mels=n_mels, d=out, channels=channels)
    elif len(convs) == 2:
        model = AudioNTT2022(n_mels=n_mels, d=conv_d + out, mlp_hidden_d=hidden, channels=channels)
    else:
        raise ValueError(f"expected 2 (AudioNTT2022) or 3 (AudioNTT2020) conv layers, found {len(convs)}")
    strict_load(model, state, "the BYOL-A weights")
    return model


def from_paper_weights(path: str | Path) -> AudioNTT2020 | AudioNTT2022:
    """Load a ``.pth`` released with the papers (e.g. ``AudioNTT2020-BYOLA-64x96d2048.pth``), in eval mode.

    Read with ``torch.load(..., weights_only=True)``: tensors only, never code.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    try:
        return from_paper_state_dict(state).eval()
    except (ValueError, RuntimeError) as err:
        raise type(err)(f"{path}: {err}") from err
