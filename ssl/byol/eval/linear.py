"""Linear probe on cached features: standardised features, L2-regularised softmax regression."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

from .features import track_progress

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
FEW_SHOT_WEIGHT_DECAYS = (1e-3, 1e-2, 1e-1, 1.0)  # few labels are separable: weak decay never converges


def standardize(train: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6) -> list[torch.Tensor]:
    """Centre and scale every ``(N, D)`` array with the mean and std of ``train`` only."""
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True) + eps
    return [(a - mean) / std for a in (train, *others)]


def fit_softmax_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int = 300
) -> torch.nn.Linear:
    """Fit ``Linear(D, C)`` minimising ``CE(xW^T + b, y) + weight_decay / 2 * ||W||^2`` with full-batch L-BFGS.

    The problem is convex, so the result does not depend on a learning rate or
    on the random initialisation (the weights start at zero).

    Args:
        x: ``(N, D)`` float features.
        y: ``(N,)`` int64 labels in ``[0, num_classes)``.
    """
    head = torch.nn.Linear(x.shape[1], num_classes).to(x.device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(x), y) + 0.5 * weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head.requires_grad_(False)


@dataclass
class ProbeResult:
    """Accuracies in percent on the test split, and the weight decay chosen on the validation split."""

    top1: float
    top5: float | None
    weight_decay: float
    val_top1: float
    val_top1_per_weight_decay: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(logits: torch.Tensor, y: torch.Tensor, num_classes: int, top_k: int = 1) -> float:
    """Micro top-k accuracy in percent (torchmetrics)."""
    return 100.0 * multiclass_accuracy(logits, y, num_classes, top_k=top_k, average="micro").item()


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int | None = None,
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> ProbeResult:
    """Linear evaluation of frozen features.

    The weight decay is selected on a validation split carved from the
    training features (stratified, ``val_fraction``), never on the test split;
    the head is then refitted on the whole training split and evaluated once
    on the test split. Features are standardised with training statistics.

    Args:
        train_x, test_x: ``(N, D)`` features.
        train_y, test_y: ``(N,)`` labels in ``[0, C)``.
        progress: show a progress bar over the weight decays.
    """
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    fit_idx, val_idx = stratified_split(train_y, val_fraction, seed)
    fx, vx = standardize(train_x[fit_idx], train_x[val_idx])
    scores = {}
    for wd in track_progress(weight_decays, "linear probe: weight decays", enabled=progress):
        head = fit_softmax_regression(fx, train_y[fit_idx], num_classes, wd)
        scores[wd] = accuracy(head(vx), train_y[val_idx], num_classes)
    best = max(weight_decays, key=lambda wd: (scores[wd], wd))  # ties: the stronger regularisation
    tx, sx = standardize(train_x, test_x)
    head = fit_softmax_regression(tx, train_y, num_classes, best)
    logits = head(sx)
    return ProbeResult(
        top1=accuracy(logits, test_y, num_classes),
        top5=accuracy(logits, test_y, num_classes, top_k=5) if num_classes >= 5 else None,
        weight_decay=best,
        val_top1=scores[best],
        val_top1_per_weight_decay={f"{wd:g}": s for wd, s in scores.items()},
    )


def stratified_split(y: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(keep, held_out)`` with about ``fraction`` of every class held out (at least one per class
    that has two or more samples)."""
    g = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = int(round(fraction * len(idx)))
        n = min(max(n, 1), len(idx) - 1) if len(idx) > 1 else 0
        held.append(idx[:n])
        keep.append(idx[n:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def few_shot_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    shots: int = 5,
    draws: int = 10,
    weight_decays: tuple[float, ...] = FEW_SHOT_WEIGHT_DECAYS,
    seed: int = 0,
    progress: bool = True,
) -> tuple[float, float]:
    """Top-1 (percent) of a linear probe trained on ``shots`` labels per class, mean and std over ``draws``.

    Features are standardised with the statistics of all training features
    (which needs no labels). The weight decay is chosen for each draw by
    ``shots``-fold cross-validation on the drawn labels alone (each fold holds
    out one sample per class), so no other label and never the test split
    informs it. ``progress`` shows a progress bar over the draws.
    """
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    g = torch.Generator().manual_seed(seed)
    tx, sx = standardize(train_x, test_x)
    accs = []
    for _ in track_progress(range(draws), f"few-shot probe: {shots}-shot draws", enabled=progress):
        # (shots, C): row f holds the fold-f sample of every class
        idx = torch.stack([
            torch.nonzero(train_y == c).flatten()[torch.randperm(int((train_y == c).sum()), generator=g)[:shots]]
            for c in range(num_classes)
        ], dim=1)
        best = _cross_validate(tx, train_y, idx, num_classes, weight_decays) if shots > 1 else weight_decays[-1]
        flat = idx.flatten()
        head = fit_softmax_regression(tx[flat], train_y[flat], num_classes, best)
        accs.append(accuracy(head(sx), test_y, num_classes))
    t = torch.tensor(accs)
    return t.mean().item(), (t.std().item() if draws > 1 else 0.0)


def _cross_validate(
    x: torch.Tensor, y: torch.Tensor, folds: torch.Tensor, num_classes: int, weight_decays: tuple[float, ...]
) -> float:
    """Weight decay with the best mean held-out accuracy over the rows of ``folds`` (ties: the larger)."""
    scores = {}
    for wd in weight_decays:
        correct = 0
        for f in range(folds.shape[0]):
            fit = torch.cat([folds[:f], folds[f + 1 :]]).flatten()
            head = fit_softmax_regression(x[fit], y[fit], num_classes, wd)
            correct += (head(x[folds[f]]).argmax(1) == y[folds[f]]).sum().item()
        scores[wd] = correct
    return max(weight_decays, key=lambda wd: (scores[wd], wd))
