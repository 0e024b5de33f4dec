"""T-JEPA training dynamics: cheap evaluations of the frozen target encoder every few epochs, and the paper's
downstream protocol at the end, for one recipe and any config overrides.

    python scripts/tjepa_study.py -c configs/tjepa_california.yaml --every 3 --out study/base.json
    python scripts/tjepa_study.py -c configs/tjepa_california.yaml --out study/tau99.json \\
        -- --model.init_args.tau_schedule.init_args.base 0.99
    python scripts/tjepa_study.py -c configs/tjepa_breast_cancer.yaml --every 10 --out study/bc_bn.json \\
        -- --model.init_args.targets byol.methods.jepa_targets.BatchStandardized
    python scripts/tjepa_study.py -c configs/tjepa_california.yaml --protocol-seeds 0 1 2 --reductions per_token flatten

Everything after ``--`` goes to ``byol fit`` (config overrides), as in ``scripts/tjepa_eval.py``. Every
``--every`` epochs (and after the first and the last) the target encoder's tokens of every row are extracted
and the curve gets, on the validation rows:

- ``ridge``: ridge regression (regression: RMSE in the target's units) or one-hot least squares (classification:
  accuracy %) on the standardised flattened tokens, penalty chosen on the validation rows; ``ridge_test`` the
  same model on the test rows; ``ridge_online`` the validation score of the online (context) encoder's tokens;
- ``rankme``: the effective rank of the flattened representation (RankMe, Garrido et al. 2023; ``rankme_centred``
  of the representation minus its mean over rows);
- ``token_std``: the std over rows of each (token, dimension) of the target encoder's feature tokens, averaged:
  the scale of the row-dependent part of what the predictor regresses (``token_rms``: their root mean square, the
  part every row shares included); ``token_rank``: the effective rank of the centred feature tokens pooled over
  features (``(N * F, d)``), how many directions the tokens use;
- ``loss``: the epoch's mean training loss; ``rel_loss``: the loss over the mean per-dimension variance of the
  target tokens (scale-free: 1 = predicting the mean token), ``tau`` the EMA decay, ``lr`` the learning rate,
  ``probe``: the online probe's validation top-1 (classification tables).

Other targets are config overrides (``--model.init_args.targets byol.methods.jepa_targets.LastLayer`` regresses
layer-normalised tokens, I-JEPA's; ``...BatchStandardized`` tokens standardised over the batch per feature and
dimension); ``--index-scale`` scales the encoders' fixed feature-index encodings (which dominate the tokens at
initialisation). ``--protocol-seeds`` then trains the paper's downstream MLP on the final target encoder's tokens (the ``mlp_tjepa``
row of ``scripts/tjepa_eval.py``: same heads, seeds and early stopping) once per ``--reductions`` entry. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from byol.cli import ByolCLI
from byol.core.monitor import rankme
from byol.eval.tabular import HeadConfig, Target, _make_model, encode_tokens, fit_head, predict
from byol.methods.tjepa import TJEPA

# ----- cheap evaluations of the frozen target ----------------------------------------------------------------


def _standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = train.mean(0), train.std(0).clamp(min=1e-8)
    return [(x - mean) / std for x in (train, *others)]


def ridge_scores(
    train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor], classes: int | None,
    penalties: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
) -> tuple[float, float]:
    """Ridge on standardised ``(N, D)`` features, penalty (times ``N``) chosen on ``val``: ``(val, test)`` scores.

    Regression: RMSE in the labels' units; classification (``classes``): accuracy % of one-hot least squares.
    """
    (x, y), (vx, vy), (tx, ty) = train, val, test
    x, vx, tx = _standardize(x.double(), vx.double(), tx.double())
    targets = F.one_hot(y.long(), classes).double() if classes else y.double()[:, None]
    offset = targets.mean(0)
    gram, moment = x.T @ x, x.T @ (targets - offset)
    eye = torch.eye(len(gram), dtype=gram.dtype)

    def score(w: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> float:
        out = features @ w + offset
        if classes:
            return 100.0 * (out.argmax(1) == labels.long()).double().mean().item()
        return (out[:, 0] - labels.double()).pow(2).mean().sqrt().item()

    weights = [torch.linalg.solve(gram + p * len(x) * eye, moment) for p in penalties]
    val_scores = [score(w, vx, vy) for w in weights]
    best = max(range(len(penalties)), key=lambda i: val_scores[i] if classes else -val_scores[i])
    return val_scores[best], score(weights[best], tx, ty)


def token_rank(tokens: torch.Tensor, num_reg: int, rows: int = 2000) -> float:
    """Effective rank of the centred feature tokens of the first ``rows`` rows, pooled over features ``(n F, d)``."""
    patches = tokens[:rows, num_reg:].reshape(-1, tokens.shape[-1]).double()
    return float(rankme(patches - patches.mean(0)))


class ScaleFeatureIndex(L.Callback):
    """Multiply the encoders' fixed feature-index encodings (online and target) by ``scale`` at the start of fit."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def on_fit_start(self, trainer, pl_module) -> None:
        for encoder in (pl_module.online, pl_module.target.module):
            encoder.feature_index.mul_(self.scale)


class Curves(L.Callback):
    """Evaluate the frozen target encoder before training (epoch 0), after epoch 1, every ``every`` epochs and after
    the last one; print each row and keep it in :attr:`rows`."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.rows: list[dict[str, float]] = []
        self._loss_sum, self._batches = 0.0, 0

    def on_train_start(self, trainer, pl_module) -> None:
        row = {"epoch": 0, **evaluate(pl_module, trainer.datamodule)}
        row.pop("token_var")
        self.rows.append(row)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._loss_sum += float(trainer.callback_metrics["train/loss_step"])  # the JEPA loss, without the probe's
        self._batches += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        mean_loss = self._loss_sum / max(self._batches, 1)
        self._loss_sum, self._batches = 0.0, 0
        if not (epoch == 1 or epoch % self.every == 0 or epoch == trainer.max_epochs):
            return
        row = {"epoch": epoch, "loss": mean_loss, **evaluate(pl_module, trainer.datamodule)}
        row["rel_loss"] = mean_loss / row.pop("token_var")
        row["tau"] = pl_module.tau_schedule(trainer.global_step, pl_module.total_steps)
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        probe = trainer.callback_metrics.get("val/probe_top1")
        if probe is not None:
            row["probe"] = 100.0 * float(probe)
        self.rows.append(row)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


@torch.no_grad()
def evaluate(model: TJEPA, data) -> dict[str, float]:
    """Ridge (val, test), RankMe, token std and variance, feature-token rank of the target encoder's tokens."""
    tokens = {name: encode_tokens(model.backbone, getattr(data, f"{name}_set"))
              for name in ("train", "val", "test")}
    labels = {name: getattr(data, f"{name}_set").labels for name in tokens}
    classes = data.preprocessing.num_classes
    val, test = ridge_scores(*[(tokens[n].flatten(1), labels[n]) for n in ("train", "val", "test")], classes)
    online = [(encode_tokens(model.online, getattr(data, f"{n}_set")).flatten(1), labels[n])
              for n in ("train", "val", "test")]
    v = tokens["val"]
    num_reg = model.backbone.num_reg_tokens
    flat, patches = v.flatten(1), v[:, num_reg:]
    return {
        "ridge": val, "ridge_test": test, "ridge_online": ridge_scores(*online, classes)[0],
        "rankme": float(rankme(flat)), "rankme_centred": float(rankme(flat - flat.mean(0))),
        "token_std": patches.std(0).mean().item(), "token_rms": patches.pow(2).mean().sqrt().item(),
        "token_var": patches.var(0).mean().item(), "token_rank": token_rank(v, num_reg),
    }


def mlp_on_tokens(backbone, data, seeds: list[int], reduction: str) -> dict[str, Any]:
    """The ``mlp_tjepa`` row of :func:`byol.eval.tabular.compare` (same seeded heads and training, so the same
    numbers as ``scripts/tjepa_eval.py``), without the raw-feature MLP and the trees."""
    config = HeadConfig()
    target = Target.fit(data.train_set.labels, data.preprocessing.task, data.preprocessing.num_classes)
    splits = {n: getattr(data, f"{n}_set") for n in ("train", "val", "test")}
    x = {n: encode_tokens(backbone, d) for n, d in splits.items()}
    y = {n: d.labels for n, d in splits.items()}
    val, test = [], []
    for seed in seeds:
        head = _make_model("mlp", "tjepa", x["train"], target, config, reduction, seed)
        head, _, _ = fit_head(head, (x["train"], y["train"]), (x["val"], y["val"]), target, config, seed,
                              progress=False)
        val.append(target.score(predict(head, x["val"]), y["val"]))
        test.append(target.score(predict(head, x["test"]), y["test"]))
    return {"test_mean": sum(test) / len(test), "val_mean": sum(val) / len(val), "test": test, "val": val}


# ----- the run ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="a T-JEPA recipe (configs/tjepa_*.yaml)")
    parser.add_argument("--every", type=int, default=3, help="evaluate every this many epochs")
    parser.add_argument("--index-scale", type=float, default=1.0,
                        help="scale of the encoders' sine-cosine feature-index encodings (ScaleFeatureIndex)")
    parser.add_argument("--protocol-seeds", type=int, nargs="*", default=[],
                        help="downstream seeds of the paper's protocol on the final target (none: skip it)")
    parser.add_argument("--reductions", nargs="+", default=["per_token"], choices=["per_token", "flatten"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and scikit-learn")
    parser.add_argument("--out", type=Path, required=True, help="JSON to write")
    args, rest = parser.parse_known_args(argv)
    return args, [a for a in rest if a != "--"]


def main(argv: list[str] | None = None) -> dict:
    args, overrides = parse_args(argv)
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        cli = ByolCLI(args=["--config", args.config, *overrides],
                      run=False)
        model, data = cli.model, cli.datamodule
        curves = Curves(args.every)
        if args.index_scale != 1.0:
            cli.trainer.callbacks.append(ScaleFeatureIndex(args.index_scale))
        cli.trainer.callbacks.append(curves)
        start = time.perf_counter()
        cli.trainer.fit(model, data)
        result: dict[str, Any] = {
            "config": args.config, "overrides": overrides, "index_scale": args.index_scale,
            "pretrain_seconds": round(time.perf_counter() - start, 1), "curves": curves.rows, "protocol": {},
        }
        for reduction in args.reductions if args.protocol_seeds else []:
            result["protocol"][reduction] = mlp_on_tokens(model.backbone, data, args.protocol_seeds, reduction)
            print(reduction, json.dumps(result["protocol"][reduction]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
