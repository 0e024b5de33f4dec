"""The downstream protocol: raw features, token reduction, early stopping, metrics in original units, the comparison."""

import math

import numpy as np
import pytest
import torch

from byol.data.tabular import TabularDataset
from byol.eval.tabular import (
    BoostingConfig, HeadConfig, Target, TokenReduction, compare, encode_tokens, fit_head, predict, raw_features,
)
from byol.models.tabular import TabularTransformer


def test_raw_features_impute_indicate_and_one_hot():
    num = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    cat = torch.tensor([[0, 2], [3, 1]])
    out = raw_features(num, cat, [4, 3], indicate=torch.tensor([False, True]))
    expected = torch.tensor([
        [1.0, 0.0, 1.0, 1, 0, 0, 0, 0, 0, 1],
        [2.0, 3.0, 0.0, 0, 0, 0, 1, 0, 1, 0],
    ])
    torch.testing.assert_close(out, expected)


def test_per_token_reduction_is_one_linear_map_per_token():
    tokens = torch.randn(4, 3, 5)
    reduce = TokenReduction(3, 5, "per_token")
    out = reduce(tokens)
    for t in range(3):
        torch.testing.assert_close(out[:, t], tokens[:, t] @ reduce.weight[t] + reduce.bias[t])
    assert TokenReduction(3, 5, "flatten")(tokens).shape == (4, 15) and reduce.out_dim == 3


def test_regression_scores_are_rmse_in_original_units():
    train_y = torch.tensor([100.0, 200.0, 300.0])
    target = Target.fit(train_y, "regression", None)
    test_y = torch.tensor([150.0, 400.0])
    zeros = torch.zeros(2, 1)  # a standardised prediction of 0 is the training mean, 200
    assert target.score(zeros, test_y) == pytest.approx(math.sqrt((50**2 + 200**2) / 2))
    assert target.score(target.encode(test_y), test_y) == pytest.approx(0.0, abs=1e-9)


def test_classification_scores_are_accuracy_in_percent():
    target = Target.fit(torch.tensor([0, 1, 2]), "classification", 3)
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0]])
    assert target.score(logits, torch.tensor([0, 1, 2, 2])) == 75.0


def test_early_stopping_keeps_the_epoch_with_the_lowest_validation_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    y = x[:, 0] * 3.0
    vx = torch.randn(64, 4, generator=g)
    vy = -vx[:, 0] * 3.0  # fitting the training split makes the validation loss worse
    target = Target.fit(y, "regression", None)
    config = HeadConfig(hidden=16, layers=1, dropout=0.0, lr=3e-2, batch_size=32, max_epochs=100, patience=5)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    model, best, history = fit_head(model, (x, y), (vx, vy), target, config, seed=0)
    assert best == int(np.argmin(history)) + 1 and len(history) == best + config.patience < config.max_epochs
    assert target.loss(predict(model, vx), target.encode(vy)).item() == pytest.approx(min(history))


def tiny_split(n: int, seed: int, task: str) -> TabularDataset:
    g = torch.Generator().manual_seed(seed)
    num = torch.randn(n, 3, generator=g)
    cat = torch.randint(0, 4, (n, 1), generator=g)
    signal = num[:, 0] + num[:, 1] * num[:, 2] + (cat[:, 0] == 2).float()
    labels = (signal > 0.3).long() if task == "classification" else 10.0 * signal + 50.0
    return TabularDataset(num, cat, labels)


@pytest.mark.parametrize(("task", "heads", "seeds"), [
    ("regression", ("mlp",), (0, 1)), ("classification", ("mlp", "resnet"), (0,)),
])
def test_comparison_reports_every_model_over_seeds(task, heads, seeds):
    torch.manual_seed(0)
    backbone = TabularTransformer(3, [4], dim=8, depth=1, heads=2, ffn_dim=16, num_reg_tokens=1)
    train, val, test = tiny_split(256, 0, task), tiny_split(64, 1, task), tiny_split(64, 2, task)
    tokens = encode_tokens(backbone, test)
    assert tokens.shape == (64, 1 + 4, 8)
    config = HeadConfig(hidden=32, layers=2, batch_size=64, max_epochs=30, patience=5)
    boosting = BoostingConfig(learning_rate=0.2, max_iter=100, patience=10)
    num_classes = 2 if task == "classification" else None
    results = compare(backbone, train, val, test, task, num_classes, [4], seeds, heads,
                      config=config, boosting=boosting)
    assert set(results["models"]) == {f"{h}_{s}" for h in heads for s in ("raw", "tjepa")} | {"hist_gradient_boosting"}
    for scores in results["models"].values():
        assert len(scores["test"]) == len(seeds) and math.isfinite(scores["test_mean"]) and scores["test_std"] >= 0
    raw = results["models"]["mlp_raw"]["test_mean"]
    if task == "regression":
        assert results["metric"] == "rmse" and raw < 0.7 * test.labels.std().item()  # learns, in original units
    else:
        assert results["metric"] == "accuracy_percent" and raw > 70
    if task == "regression":
        again = compare(backbone, train, val, test, task, None, [4], (0,), config=config, boosting=boosting)
        assert again["models"]["mlp_tjepa"]["test"][0] == results["models"]["mlp_tjepa"]["test"][0]  # seeded
