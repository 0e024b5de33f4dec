"""The family table: every method's digits (or breast-cancer table) recipe at one fixed budget, against a random init.

    python scripts/compare_methods.py                       # digits, 20 epochs each, about 10 min on 2 CPU cores
    python scripts/compare_methods.py --epochs 2 --methods VICReg
    python scripts/compare_methods.py --table --epochs 100  # scikit-learn's breast cancer, also against raw features

Each recipe (``configs/<name>.yaml``) pretrains with its own seed, views and heads for ``--epochs`` epochs; the
frozen backbone is then evaluated as in the demo (linear probe on all labels, 5 labels per class over 20 draws,
weighted kNN) on the 360 held-out digits. The same architecture at its random initialisation is the baseline.
With ``--table`` the recipes are the ``*_breast_cancer`` ones and the evaluation is a linear probe and kNN on the
table's test split, with the preprocessed raw features as a second baseline. Writes ``--out`` (JSON), prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from demo import evaluate
from rich.console import Console
from rich.table import Table

from byol.cli import ByolCLI
from byol.eval import knn_accuracy, linear_probe

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {  # name -> (recipe, extra options)
    "BYOL": ("byol_digits", []),
    "SimSiam": ("simsiam_digits", []),
    "MoCo v3": ("mocov3_digits", []),
    "Barlow Twins": ("barlow_twins_digits", []),
    "Barlow Twins + mixed samples": ("barlow_twins_digits", ["--model.init_args.mixed_samples", "4.0"]),
    "VICReg": ("vicreg_digits", []),
}


TABLE_RECIPES = {"BYOL": "byol_breast_cancer", "SimSiam": "simsiam_breast_cancer", "MoCo v3": "mocov3_breast_cancer",
                 "Barlow Twins": "barlow_twins_breast_cancer", "VICReg": "vicreg_breast_cancer"}


@torch.no_grad()
def evaluate_table(backbone: torch.nn.Module | None, datamodule) -> dict:
    """Linear probe (weight decay chosen on a split of the training rows) and kNN on the test rows; ``None``: the
    preprocessed raw features."""
    def features(rows):
        return torch.cat([rows.num.nan_to_num(0.0), rows.cat.float()], 1) if backbone is None else backbone.eval()(rows.inputs)

    train, test = datamodule.train_set, datamodule.test_set
    trx, tex = features(train), features(test)
    classes = int(train.labels.max()) + 1
    return {"linear_top1": linear_probe(trx, train.labels, tex, test.labels).top1,
            "knn_top1": knn_accuracy(trx, train.labels, tex, test.labels, num_classes=classes, k=20)["top1"]}


def pretrain(recipe: str, extra: list[str], epochs: int, out: Path):
    """Fit a recipe for ``epochs`` epochs under ``out``; returns the CLI, its model's random init and the seconds."""
    cli = ByolCLI(args=["--config", str(ROOT / "configs" / f"{recipe}.yaml"), "--trainer.max_epochs", str(epochs),
                        "--trainer.default_root_dir", str(out), "--trainer.logger", "false", *extra], run=False)
    random_backbone = copy.deepcopy(cli.model.backbone)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.model.cpu()
    return cli, random_backbone, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=None, choices=list(RECIPES),
                        help="default: every method (the table has no mixed-sample row)")
    parser.add_argument("--table", action="store_true", help="the breast-cancer recipes instead of the digits ones")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "runs" / "compare_methods.json")
    args = parser.parse_args()
    if args.table:
        return compare_on_table(args)

    rows = {}
    for name in args.methods or list(RECIPES):
        recipe, extra = RECIPES[name]
        cli, random_backbone, seconds = pretrain(recipe, extra, args.epochs, args.out.parent / "compare" / recipe)
        model = cli.model
        pre, size = model.views.preprocess, model.views.size
        rows[name] = {"recipe": recipe, "options": extra, "epochs": args.epochs, "pretrain_seconds": round(seconds),
                      **{k: v for k, v in evaluate(model.backbone, pre, size, args.shots, args.draws).items()
                         if not k.startswith("test_")}}
        if "random init" not in rows:  # every recipe shares the demo's architecture and seed
            rows["random init"] = {k: v for k, v in evaluate(random_backbone, pre, size, args.shots, args.draws).items()
                                   if not k.startswith("test_")}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")

    table = Table(title=f"Frozen features on held-out digits (360 images) after {args.epochs} epochs, top-1 %")
    for column in ("method", "linear, all labels", f"linear, {args.shots} labels/class", "kNN", "pretraining"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, r in rows.items():
        table.add_row(name, f"{r['linear_top1']:.1f}", f"{r['fewshot_top1']:.1f} ± {r['fewshot_std']:.1f}",
                      f"{r['knn_top1']:.1f}", f"{r['pretrain_seconds']} s" if "pretrain_seconds" in r else "-")
    Console().print(table)
    print(f"wrote {args.out}")


def compare_on_table(args: argparse.Namespace) -> None:
    rows = {}
    for name in args.methods or list(TABLE_RECIPES):
        recipe = TABLE_RECIPES[name]
        cli, random_backbone, seconds = pretrain(recipe, [], args.epochs, args.out.parent / "compare" / recipe)
        rows[name] = {"recipe": recipe, "epochs": args.epochs, "pretrain_seconds": round(seconds),
                      **evaluate_table(cli.model.backbone, cli.datamodule)}
        if "random init" not in rows:  # every recipe shares the encoder and seed
            rows["random init"] = evaluate_table(random_backbone, cli.datamodule)
            rows["raw features"] = evaluate_table(None, cli.datamodule)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    table = Table(title=f"Frozen features on the breast-cancer test rows after {args.epochs} epochs, accuracy %")
    for column in ("method", "linear", "kNN (k=20)", "pretraining"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, r in rows.items():
        table.add_row(name, f"{r['linear_top1']:.1f}", f"{r['knn_top1']:.1f}",
                      f"{r['pretrain_seconds']} s" if "pretrain_seconds" in r else "-")
    Console().print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
