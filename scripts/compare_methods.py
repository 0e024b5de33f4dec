"""The family table: every method's recipe for one data set at one fixed budget, against a random init.

    python scripts/compare_methods.py                           # digits, 20 epochs each, ~12 min on 2 CPU cores
    python scripts/compare_methods.py --data fsdd --epochs 10   # spoken digits (../shared/data/fsdd)
    python scripts/compare_methods.py --data table --epochs 100 # scikit-learn's breast-cancer table
    python scripts/compare_methods.py --data california --epochs 20  # a regression table (RMSE)
    python scripts/compare_methods.py --epochs 2 --methods VICReg

Each recipe (``configs/<name>.yaml``) pretrains with its own seed, views and heads for ``--epochs`` epochs. The
frozen backbone then gets a linear probe on all training labels (weight decay chosen on a validation split), a
linear probe on ``--shots`` labels per class (``--draws`` random draws) and a weighted kNN, on held-out data:
the 360 test digits; FSDD's 300 test recordings (indices 0-4, every clip embedded whole, as the audio papers
do); the table's 113 test rows. On California Housing (the FT-Transformer benchmark's split 0, a regression) the
breast-cancer recipes run with the table swapped, and the frozen features get ridge regression (its penalty chosen
on the validation rows) and a kNN regression (mean target of the 20 nearest rows), scored by RMSE in $100k on the
4,128 test rows. The same architecture at its random initialisation is the baseline (one row per encoder
architecture: the JEPA recipes use ViTs), and on tables the preprocessed raw features too. Writes ``--out`` (JSON), prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from byol.cli import ByolCLI
from byol.data import Digits
from byol.eval import extract_features, few_shot_probe, knn_accuracy, linear_probe
from byol.eval.linear import standardize
from byol.eval.audio import clip_embeddings

ROOT = Path(__file__).resolve().parent.parent
CCSL = ["--model.init_args.cross_similarity", "byol.losses.CrossCosineLoss"]
CSSL = ["--model.init_args.cross_similarity", "byol.losses.CrossSigmoidLoss"]
RECIPES = {  # data set -> method -> (recipe, extra options)
    "digits": {
        "BYOL": ("byol_digits", []), "BYOL + CCSL": ("byol_digits", CCSL), "BYOL + CSSL": ("byol_digits", CSSL),
        "SimSiam": ("simsiam_digits", []), "MoCo v3": ("mocov3_digits", []),
        "Barlow Twins": ("barlow_twins_digits", []),
        "Barlow Twins + mixed samples": ("barlow_twins_digits", ["--model.init_args.mixed_samples", "4.0"]),
        "VICReg": ("vicreg_digits", []), "DINO": ("dino_digits", []), "JEPA": ("jepa_digits", []),
    },
    "fsdd": {
        "BYOL": ("byola_fsdd", []), "BYOL + CCSL": ("byola_fsdd", CCSL), "SimSiam": ("simsiam_fsdd", []),
        "MoCo v3": ("mocov3_fsdd", []), "Barlow Twins": ("barlow_twins_fsdd", []), "VICReg": ("vicreg_fsdd", []),
        "DINO": ("dino_fsdd", []), "JEPA": ("jepa_fsdd", []),
    },
    "table": {
        "BYOL": ("byol_breast_cancer", []), "BYOL + CCSL": ("byol_breast_cancer", CCSL),
        "SimSiam": ("simsiam_breast_cancer", []), "MoCo v3": ("mocov3_breast_cancer", []),
        "Barlow Twins": ("barlow_twins_breast_cancer", []), "VICReg": ("vicreg_breast_cancer", []),
        "JEPA (T-JEPA)": ("tjepa_breast_cancer", []),
    },
}
CALIFORNIA = ["--data.class_path", "byol.data.tabular.RTDLSplitDataModule",
              "--data.init_args.root", str(ROOT.parent / "shared/data/california_housing/rtdl_split"),
              "--data.init_args.batch_size", "256", "--model.init_args.backbone.init_args.num_numeric", "8",
              "--model.init_args.num_classes", "null", "--model.init_args.warmup_epochs", "1"]  # 52 steps of 256
RECIPES["california"] = {name: (recipe, extra + CALIFORNIA) for name, (recipe, extra) in RECIPES["table"].items()}
TITLES = {"digits": "held-out digits (360 images)", "fsdd": "FSDD's test recordings (300 clips, indices 0-4)",
          "table": "the breast-cancer test rows (113)", "california": "California Housing's test rows (4,128)"}
TABLES = ("table", "california")


@torch.no_grad()
def features(backbone: torch.nn.Module | None, data: str, cli) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(x, y)]`` of the training and test splits (California: training, validation, test) under a frozen
    backbone; ``None``: a table's preprocessed raw features."""
    views, dm = cli.model.views, cli.datamodule
    if data == "digits":
        return [extract_features(backbone, Digits(split=split, size=views.size), views.preprocess, progress=False)
                for split in ("train", "test")]
    if data == "fsdd":  # every clip embedded whole
        return [clip_embeddings(backbone.eval(), views.preprocess, clips) for clips in (dm.train_set, dm.val_set)]
    splits = (dm.train_set, dm.val_set, dm.test_set) if data == "california" else (dm.train_set, dm.test_set)
    if backbone is None:
        return [(torch.cat([rows.num.nan_to_num(0.0), rows.cat.float()], 1), rows.labels) for rows in splits]
    return [(backbone.eval()(rows.inputs), rows.labels) for rows in splits]


def evaluate(backbone: torch.nn.Module | None, data: str, cli, shots: int, draws: int) -> dict:
    """Linear probe, ``shots``-per-class probe and kNN (top-1 %); on California ridge and kNN regression (RMSE)."""
    if data == "california":
        (trx, try_), (vax, vay), (tex, tey) = features(backbone, data, cli)
        return {"ridge_rmse": ridge_rmse(trx, try_, vax, vay, tex, tey), "knn_rmse": knn_rmse(trx, try_, tex, tey)}
    (trx, try_), (tex, tey) = features(backbone, data, cli)
    classes = int(try_.max()) + 1
    few_mean, few_std = few_shot_probe(trx, try_, tex, tey, shots=shots, draws=draws)
    knn = knn_accuracy(trx, try_, tex, tey, num_classes=classes, **({"k": 20} if data == "table" else {}))
    return {"linear_top1": linear_probe(trx, try_, tex, tey, classes).top1, "fewshot_top1": few_mean,
            "fewshot_std": few_std, "knn_top1": knn["top1"]}


def ridge_rmse(trx, try_, vax, vay, tex, tey, penalties=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)) -> float:
    """Test RMSE of ridge regression on standardised ``(N, D)`` features, the penalty chosen on the validation
    rows (closed form in float64, targets centred)."""
    trx, vax, tex = standardize(trx.double(), vax.double(), tex.double())
    mean = try_.double().mean()
    gram, moment = trx.T @ trx, trx.T @ (try_.double() - mean)

    def fit(penalty: float) -> torch.Tensor:
        return torch.linalg.solve(gram + penalty * len(trx) * torch.eye(len(gram), dtype=gram.dtype), moment)

    def rmse(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        return (x @ w + mean - y.double()).pow(2).mean().sqrt().item()

    best = min(penalties, key=lambda penalty: rmse(fit(penalty), vax, vay))
    return rmse(fit(best), tex, tey)


def knn_rmse(trx: torch.Tensor, try_: torch.Tensor, tex: torch.Tensor, tey: torch.Tensor, k: int = 20) -> float:
    """Test RMSE of predicting each row's target by the mean target of its ``k`` nearest training rows
    (Euclidean distance on standardised features)."""
    trx, tex = standardize(trx.float(), tex.float())
    nearest = torch.cat([torch.cdist(chunk, trx).topk(k, largest=False).indices for chunk in tex.split(1024)])
    return (try_.float()[nearest].mean(1) - tey.float()).pow(2).mean().sqrt().item()


def pretrain(recipe: str, extra: list[str], epochs: int, out: Path):
    """Fit a recipe for ``epochs`` epochs under ``out``; returns the CLI, its model's random init and the seconds."""
    cli = ByolCLI(args=["--config", str(ROOT / "configs" / f"{recipe}.yaml"), "--trainer.max_epochs", str(epochs),
                        "--trainer.default_root_dir", str(out), "--trainer.logger", "false", *extra], run=False)
    if getattr(cli.model, "predictor", True) is None:  # T-JEPA builds its networks for the table: build them now
        cli.datamodule.setup("fit")
        table = cli.datamodule.preprocessing
        cli.model.build(table.num_numeric, table.cardinalities, table.export_config(), table.num_classes)
    random_backbone = copy.deepcopy(cli.model.backbone)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.model.cpu()
    return cli, random_backbone, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=list(RECIPES), default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method of --data")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="default: checkpoints/runs/compare_<data>.json")
    args = parser.parse_args()
    recipes = RECIPES[args.data]
    unknown = set(args.methods or ()) - set(recipes)
    if unknown:
        parser.error(f"--methods: {sorted(unknown)} have no {args.data} recipe; choose from {list(recipes)}")
    out = args.out or ROOT / "checkpoints" / "runs" / f"compare_{args.data}.json"

    rows, architectures = {}, {}
    for name in args.methods or list(recipes):
        recipe, extra = recipes[name]
        cli, random_backbone, seconds = pretrain(recipe, extra, args.epochs, out.parent / "compare" / recipe)
        architecture = json.dumps(random_backbone.export_config(), sort_keys=True)
        if architecture not in architectures:  # one random-init row per encoder architecture (seed 0 for all)
            label = "random init" if not architectures else f"random init ({name}'s encoder)"
            architectures[architecture] = label
            rows[label] = evaluate(random_backbone, args.data, cli, args.shots, args.draws)
            if args.data in TABLES and "raw features" not in rows:
                rows["raw features"] = evaluate(None, args.data, cli, args.shots, args.draws)
        rows[name] = {"recipe": recipe, "options": extra, "epochs": args.epochs, "pretrain_seconds": round(seconds),
                      **evaluate(cli.model.backbone, args.data, cli, args.shots, args.draws)}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2) + "\n")

    Console().print(results_table(rows, args))
    print(f"wrote {out}")


def results_table(rows: dict, args: argparse.Namespace) -> Table:
    regression = args.data == "california"
    table = Table(title=f"Frozen features on {TITLES[args.data]} after {args.epochs} epochs, "
                        + ("RMSE" if regression else "top-1 %"))
    columns = ["ridge", "kNN (k=20)"] if regression else ["linear, all labels", f"linear, {args.shots} labels/class",
                                                          "kNN"]
    for column in ("method", *columns, "pretraining"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, r in rows.items():
        cells = ([f"{r['ridge_rmse']:.4f}", f"{r['knn_rmse']:.4f}"] if regression else
                 [f"{r['linear_top1']:.1f}", f"{r['fewshot_top1']:.1f} ± {r['fewshot_std']:.1f}", f"{r['knn_top1']:.1f}"])
        table.add_row(name, *cells, f"{r['pretrain_seconds']} s" if "pretrain_seconds" in r else "-")
    return table


if __name__ == "__main__":
    main()
