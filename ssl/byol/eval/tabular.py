"""The T-JEPA paper's downstream protocol on tables, and the comparison it reports.

Frozen **target** encoder -> representation of every row -> a supervised head
(an MLP as in Gorishniy et al. 2021, optionally their ResNet) trained with
early stopping on the validation split, evaluated once on the test split. In
the same run and on the same splits, the same head on the raw preprocessed
features and scikit-learn's ``HistGradientBoosting`` (early stopping on the
validation split) give the two baselines. Each supervised model is trained
with several seeds; results are mean and sample std over seeds.

Metrics: accuracy in percent (classification) or RMSE in the target's
original units (regression; heads fit standardised targets, predictions are
mapped back before scoring).

:func:`tabular_protocol` runs the comparison for a backbone and a table's datamodule (``byol eval tabular`` and
``scripts/tjepa_eval.py`` both call it), after :func:`check_tabular_data` has checked the table has what the
protocol needs (a target, a validation and a test split), before anything long starts.

Representation (``reduction``): the encoder's ``R + F`` output tokens of width
``d`` are reduced per token by a learned linear map ``d -> 1`` (``R + F`` inputs;
the reference's ``linear_per_feature``; the default), trained with the head, or
flattened (``(R + F) * d`` inputs).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from torch import Tensor, nn

from ..data.tabular import TabularDataModule, TabularDataset
from ..data.tabular_preprocessing import TabularPreprocessing
from .features import track_progress

TaskKind = Literal["regression", "classification"]
Reduction = Literal["flatten", "per_token"]
HeadKind = Literal["mlp", "resnet"]


# ----- inputs ------------------------------------------------------------------------------------------------


def raw_features(num: Tensor, cat: Tensor, cardinalities: Sequence[int], indicate: Tensor) -> Tensor:
    """The baselines' input: numeric features (missing -> 0, the training mean after the transform) with a 0/1
    missing indicator for each column in ``indicate``, then one-hot categoricals.

    Args:
        num: ``(N, F_num)`` preprocessed numeric features (``NaN`` = missing).
        cat: ``(N, F_cat)`` category indices.
        cardinalities: one-hot widths of the categorical columns.
        indicate: ``(F_num,)`` bool, columns that get an indicator (those with missing training values).

    Returns:
        ``(N, F_num + indicate.sum() + sum(cardinalities))`` float32.
    """
    parts = [num.nan_to_num(0.0), num[:, indicate].isnan().float()]
    parts += [F.one_hot(cat[:, j], c).float() for j, c in enumerate(cardinalities)]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def encode_tokens(backbone: nn.Module, data: TabularDataset, batch_size: int = 1024, device: str = "cpu") -> Tensor:
    """The frozen backbone's tokens of every row, ``(N, R + F, d)`` float32 on the CPU.

    Uses the feature interface only: ``backbone(x)`` is ``(B, num_tokens * d)``.
    """
    was_training = backbone.training
    backbone.eval().to(device)
    out = []
    for start in range(0, len(data), batch_size):
        x = {k: v[start : start + batch_size].to(device) for k, v in data.inputs.items()}
        out.append(backbone(x).float().cpu())
    backbone.train(was_training)
    return torch.cat(out).view(len(data), backbone.num_tokens, -1)


# ----- heads -------------------------------------------------------------------------------------------------


class TokenReduction(nn.Module):
    """Tokens ``(B, T, d)`` to head inputs: ``"flatten"`` -> ``(B, T * d)``; ``"per_token"`` -> ``(B, T)`` with
    ``y_t = <w_t, x_t> + b_t``, one linear map per token."""

    def __init__(self, num_tokens: int, dim: int, mode: Reduction) -> None:
        super().__init__()
        if mode not in ("flatten", "per_token"):
            raise ValueError(f"reduction must be 'flatten' or 'per_token', got {mode!r}")
        self.mode = mode
        self.out_dim = num_tokens * dim if mode == "flatten" else num_tokens
        if mode == "per_token":
            bound = 1 / math.sqrt(dim)
            self.weight = nn.Parameter(torch.empty(num_tokens, dim).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.empty(num_tokens).uniform_(-bound, bound))

    def forward(self, tokens: Tensor) -> Tensor:
        if self.mode == "flatten":
            return tokens.flatten(1)
        return (tokens * self.weight).sum(-1) + self.bias


class MLP(nn.Sequential):
    """Gorishniy et al. 2021's MLP: ``layers`` x (Linear -> ReLU -> Dropout), then a linear output."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 3, dropout: float = 0.1) -> None:
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
        super().__init__(*blocks, nn.Linear(hidden if layers else in_dim, out_dim))


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(Dropout(ReLU(Linear(BatchNorm(x))))))`` (Gorishniy et al. 2021, ResNet)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm1d(dim), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetMLP(nn.Sequential):
    """Gorishniy et al. 2021's ResNet for tables: Linear -> ``layers`` residual blocks -> BN -> ReLU -> Linear."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 3, dropout: float = 0.1) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), *[ResidualBlock(hidden, 2 * hidden, dropout) for _ in range(layers)],
            nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim),
        )


@dataclass
class HeadConfig:
    """Supervised head and its training: AdamW, mini-batches, early stopping on the validation loss.

    The paper tunes these per data set; the defaults are Gorishniy et al.'s
    usual MLP and need no tuning to compare representations.
    """

    hidden: int = 256
    layers: int = 3
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 512
    max_epochs: int = 200
    patience: int = 16


@dataclass
class BoostingConfig:
    """scikit-learn's ``HistGradientBoosting``: learning rate, iterations, early stopping on the validation split."""

    learning_rate: float = 0.05
    max_iter: int = 2000
    patience: int = 50


def make_head(kind: HeadKind, in_dim: int, out_dim: int, config: HeadConfig) -> nn.Module:
    cls = {"mlp": MLP, "resnet": ResNetMLP}[kind]
    return cls(in_dim, out_dim, config.hidden, config.layers, config.dropout)


# ----- supervised training -----------------------------------------------------------------------------------


@dataclass
class Target:
    """Labels of a split and how to score predictions of them."""

    task: TaskKind
    num_classes: int | None = None
    mean: float = 0.0  # regression: training-split statistics used to standardise
    std: float = 1.0

    @classmethod
    def fit(cls, train_labels: Tensor, task: TaskKind, num_classes: int | None) -> Target:
        if task == "classification":
            return cls(task, num_classes)
        y = train_labels.double()
        return cls(task, None, y.mean().item(), y.std().item() or 1.0)

    @property
    def out_dim(self) -> int:
        return self.num_classes if self.task == "classification" else 1

    def encode(self, labels: Tensor) -> Tensor:
        """What the head regresses or classifies: standardised values ``(N, 1)`` or class indices ``(N,)``."""
        if self.task == "classification":
            return labels.long()
        return ((labels.double() - self.mean) / self.std).float()[:, None]

    def loss(self, outputs: Tensor, encoded: Tensor) -> Tensor:
        return F.cross_entropy(outputs, encoded) if self.task == "classification" else F.mse_loss(outputs, encoded)

    def score(self, outputs: Tensor, labels: Tensor) -> float:
        """Accuracy in percent, or RMSE in the labels' original units."""
        if self.task == "classification":
            return 100.0 * (outputs.argmax(1) == labels).double().mean().item()
        predictions = outputs[:, 0].double() * self.std + self.mean
        return (predictions - labels.double()).pow(2).mean().sqrt().item()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 2048) -> Tensor:
    """Outputs of ``model`` in eval mode for every row of ``x``."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def fit_head(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    target: Target,
    config: HeadConfig,
    seed: int,
    progress: bool = True,
) -> tuple[nn.Module, int, list[float]]:
    """Train ``model`` on ``train = (inputs, labels)``; keep the weights of the epoch with the lowest validation loss.

    Stops after ``config.patience`` epochs without improvement. The shuffling
    comes from a generator seeded with ``seed``; the global RNG is left as it was. ``progress`` shows a progress
    bar over the epochs.

    Returns:
        ``(model with the best weights, in eval mode; the best epoch, 1-based; the validation loss of every epoch)``.
    """
    (x, y), (vx, vy) = train, val
    y, vy = target.encode(y), target.encode(vy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_epoch, best_state, history = math.inf, 0, copy.deepcopy(model.state_dict()), []
    batch_norm = any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout
        epochs = range(1, config.max_epochs + 1)
        for epoch in track_progress(epochs, f"head epochs (seed {seed})", enabled=progress):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), config.batch_size):
                rows = order[i : i + config.batch_size]
                if len(rows) < 2 and batch_norm:
                    continue  # BatchNorm cannot train on one row
                loss = target.loss(model(x[rows]), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            val_loss = target.loss(predict(model, vx), vy).item()
            history.append(val_loss)
            if val_loss < best_loss:
                best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    return model.eval(), best_epoch, history


def gradient_boosting(
    train: tuple[np.ndarray, Tensor], val: tuple[np.ndarray, Tensor], test: tuple[np.ndarray, Tensor],
    categorical: np.ndarray, target: Target, seed: int, config: BoostingConfig | None = None,
) -> tuple[float, float]:
    """scikit-learn's HistGradientBoosting on the preprocessed features (``NaN`` = missing, categories native),
    early-stopped on the validation split. Returns ``(validation score, test score)``."""
    config = config or BoostingConfig()
    cls = HistGradientBoostingClassifier if target.task == "classification" else HistGradientBoostingRegressor
    model = cls(
        learning_rate=config.learning_rate, max_iter=config.max_iter, early_stopping=True,
        n_iter_no_change=config.patience, categorical_features=categorical, random_state=seed,
    )
    model.fit(train[0], train[1].numpy(), X_val=val[0], y_val=val[1].numpy())

    def score(split: tuple[np.ndarray, Tensor]) -> float:
        if target.task == "classification":
            return 100.0 * float((model.predict(split[0]) == split[1].numpy()).mean())
        return float(np.sqrt(np.mean((model.predict(split[0]) - split[1].double().numpy()) ** 2)))

    return score(val), score(test)


# ----- the comparison ----------------------------------------------------------------------------------------


@dataclass
class ModelScores:
    """One model's validation and test scores over seeds."""

    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    best_epoch: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        t = np.asarray(self.test)
        return {
            "test_mean": float(t.mean()), "test_std": float(t.std(ddof=1)) if len(t) > 1 else 0.0,
            "val_mean": float(np.mean(self.val)), **asdict(self),
        }


def compare(
    backbone: nn.Module,
    train: TabularDataset,
    val: TabularDataset,
    test: TabularDataset,
    task: TaskKind,
    num_classes: int | None,
    cardinalities: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    heads: Sequence[HeadKind] = ("mlp",),
    reduction: Reduction = "per_token",
    config: HeadConfig | None = None,
    boosting: BoostingConfig | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Head on the raw features vs the same head on the frozen backbone's tokens vs gradient-boosted trees.

    Args:
        backbone: a frozen tabular encoder (``backbone(x)`` flattened tokens, ``num_tokens``).
        train, val, test: the preprocessed splits (labels in original units).
        task, num_classes: the target.
        cardinalities: the categorical columns' index ranges (for one-hot raw features).
        seeds: one supervised run per seed and model.
        heads: ``"mlp"`` and/or ``"resnet"``; each is trained on both inputs.
        reduction: how tokens become head inputs (module docstring).
        config, boosting: the heads' and the trees' settings.

    Returns:
        ``{"metric", "task", "models": {name: scores summary}, ...}`` with names
        ``"<head>_raw"``, ``"<head>_tjepa"`` and ``"hist_gradient_boosting"``.
    """
    config = config or HeadConfig()
    target = Target.fit(train.labels, task, num_classes)
    splits = {"train": train, "val": val, "test": test}
    indicate = train.num.isnan().any(0)
    inputs = {
        "raw": {n: raw_features(d.num, d.cat, cardinalities, indicate) for n, d in splits.items()},
        "tjepa": {n: encode_tokens(backbone, d, device=device) for n, d in splits.items()},
    }
    labels = {n: d.labels for n, d in splits.items()}
    gbdt = _gbdt_inputs(list(splits.values()), cardinalities)
    scores: dict[str, ModelScores] = {}
    for seed in track_progress(seeds, "seeds"):
        for kind in heads:
            for source, x in inputs.items():
                entry = scores.setdefault(f"{kind}_{source}", ModelScores())
                model = _make_model(kind, source, x["train"], target, config, reduction, seed)
                model, epoch, _ = fit_head(model, (x["train"], labels["train"]), (x["val"], labels["val"]),
                                           target, config, seed)
                entry.val.append(target.score(predict(model, x["val"]), labels["val"]))
                entry.test.append(target.score(predict(model, x["test"]), labels["test"]))
                entry.best_epoch.append(epoch)
        v, t = gradient_boosting(*[(gbdt[n], labels[n]) for n in splits], gbdt["categorical"], target, seed, boosting)
        entry = scores.setdefault("hist_gradient_boosting", ModelScores())
        entry.val.append(v)
        entry.test.append(t)
    return {
        "task": task,
        "metric": "accuracy_percent" if task == "classification" else "rmse",
        "seeds": list(seeds),
        "reduction": reduction,
        "head_config": asdict(config),
        "boosting_config": asdict(boosting or BoostingConfig()),
        "models": {name: s.summary() for name, s in scores.items()},
    }


def _make_model(
    kind: HeadKind, source: str, train_x: Tensor, target: Target, config: HeadConfig, reduction: Reduction, seed: int
) -> nn.Module:
    """A freshly initialised head (seeded; the global RNG is left as it was); tokens ``(N, T, d)`` are reduced first."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if source == "raw":
            return make_head(kind, train_x.shape[1], target.out_dim, config)
        reduce = TokenReduction(train_x.shape[1], train_x.shape[2], reduction)
        return nn.Sequential(reduce, make_head(kind, reduce.out_dim, target.out_dim, config))


def _gbdt_inputs(splits: Sequence[TabularDataset], cardinalities: Sequence[int]) -> dict[str, np.ndarray]:
    """Numeric features (``NaN`` = missing) and category indices side by side, and the mask of the columns the trees
    treat as categories (those with at most 255 indices, scikit-learn's limit; others stay ordinal)."""
    out = {name: torch.cat([d.num, d.cat.float()], dim=1).numpy() for name, d in zip(("train", "val", "test"), splits)}
    out["categorical"] = np.array([False] * splits[0].num.shape[1] + [c <= 255 for c in cardinalities], dtype=bool)
    return out


# ----- a backbone and a table's datamodule -------------------------------------------------------------------


def check_tabular_data(data: TabularDataModule) -> None:
    """Raise a ``ValueError`` naming what is missing when ``data`` cannot be evaluated with the protocol: a target
    column (``data.target``), a validation split (early stopping) or a test split. Cheap: run it before pretraining."""
    source = data.splits.source
    if data.preprocessing.task is None:
        raise ValueError(f"the downstream protocol needs a target column, and {source} has none: "
                         "give data.init_args.target COLUMN")
    for name, rows in (("validation", data.splits.val), ("test", data.splits.test)):
        if len(rows) == 0:
            raise ValueError(
                f"the downstream protocol needs a {name} split, and {source} has no {name} rows: give "
                f"data.init_args.{'val' if name == 'validation' else 'test'}_fraction > 0, or "
                f"'{'val' if name == 'validation' else 'test'}' rows in the split column"
            )


def tabular_protocol(
    backbone: nn.Module,
    preprocessing: TabularPreprocessing,
    data: TabularDataModule,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    heads: Sequence[HeadKind] = ("mlp",),
    reduction: Reduction = "per_token",
    config: HeadConfig | None = None,
    boosting: BoostingConfig | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """:func:`compare` for a frozen tabular backbone on the splits of ``data``.

    The rows go through the backbone's own ``preprocessing`` (the one fitted on its pretraining table, from its
    export), so the backbone sees what it was trained on; the raw-feature head and the trees see the same
    preprocessed columns. Labels, task and classes are the datamodule's target.
    """
    check_tabular_data(data)
    labelled = {"train": data.train_set, "val": data.val_set, "test": data.test_set}
    if preprocessing is data.preprocessing:
        splits = labelled
    else:
        frames = {"train": data.splits.train, "val": data.splits.val, "test": data.splits.test}
        splits = {}
        for name, frame in frames.items():
            x = preprocessing.transform(frame, f"{data.splits.source} ({name} split)")
            splits[name] = TabularDataset(x["num"], x["cat"], labelled[name].labels)
    results = compare(backbone, splits["train"], splits["val"], splits["test"], data.preprocessing.task,
                      data.preprocessing.num_classes, preprocessing.cardinalities, seeds, heads, reduction, config,
                      boosting, device)
    results.update(rows={n: len(d) for n, d in splits.items()}, features=preprocessing.feature_names,
                   source=data.splits.source)
    return results


def tabular_summary(results: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of :func:`compare`'s results: the mean test score of every model."""
    return {name: s["test_mean"] for name, s in results["models"].items()}


def print_tabular_table(results: dict[str, Any], title: str) -> None:
    """One row per model: test score mean ± std over seeds, validation mean, number of seeds."""
    higher_better = results["task"] == "classification"
    table = Table(title=title)
    table.add_column("model")
    table.add_column(("accuracy (%)" if higher_better else "RMSE") + ", test, mean ± std", justify="right")
    table.add_column("validation, mean", justify="right")
    table.add_column("seeds", justify="right")
    for name, s in results["models"].items():
        table.add_row(name, f"{s['test_mean']:.4f} ± {s['test_std']:.4f}", f"{s['val_mean']:.4f}", str(len(s["test"])))
    Console().print(table)
