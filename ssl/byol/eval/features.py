"""Feature extraction from a frozen backbone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: DataLoader,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a frozen backbone in eval mode over ``loader``.

    Args:
        backbone: maps a preprocessed batch to ``(B, D)`` features.
        loader: yields ``(inputs, labels)``.
        preprocess: applied to each input batch on ``device`` (e.g. ``views.preprocess``).

    Returns:
        ``(features (N, D) float32 on CPU, labels (N,) int64)``.
    """
    was_training = backbone.training
    backbone.eval().to(device)
    feats, labels = [], []
    for x, y in tqdm(loader, desc="features", disable=not progress, leave=False):
        x = x.to(device, non_blocking=True)
        if preprocess is not None:
            x = preprocess(x)
        feats.append(backbone(x).float().cpu())
        labels.append(torch.as_tensor(y))
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels).long()
