"""The family table on digits: every method's digits recipe at one fixed budget, against a random init.

    python scripts/compare_methods.py                       # 20 epochs each, about 15 min on 2 CPU cores
    python scripts/compare_methods.py --epochs 2 --methods vicreg_digits

Each recipe (``configs/<name>.yaml``) pretrains with its own seed, views and heads for ``--epochs`` epochs; the
frozen backbone is then evaluated as in the demo (linear probe on all labels, 5 labels per class over 20 draws,
weighted kNN) on the 360 held-out digits. The same architecture at its random initialisation is the baseline.
Writes ``--out`` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from demo import evaluate
from rich.console import Console
from rich.table import Table

from byol.cli import ByolCLI

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {  # name -> (recipe, extra options)
    "BYOL": ("byol_digits", []),
    "SimSiam": ("simsiam_digits", []),
    "MoCo v3": ("mocov3_digits", []),
    "Barlow Twins": ("barlow_twins_digits", []),
    "Barlow Twins + mixed samples": ("barlow_twins_digits", ["--model.init_args.mixed_samples", "4.0"]),
    "VICReg": ("vicreg_digits", []),
}


def pretrain(recipe: str, extra: list[str], epochs: int, out: Path):
    """Fit a recipe for ``epochs`` epochs under ``out``; returns the model, its random init and the seconds taken."""
    cli = ByolCLI(args=["--config", str(ROOT / "configs" / f"{recipe}.yaml"), "--trainer.max_epochs", str(epochs),
                        "--trainer.default_root_dir", str(out), "--trainer.logger", "false", *extra], run=False)
    random_backbone = copy.deepcopy(cli.model.backbone)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli.model.cpu(), random_backbone, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "runs" / "compare_methods.json")
    args = parser.parse_args()

    rows = {}
    for name in args.methods:
        recipe, extra = RECIPES[name]
        model, random_backbone, seconds = pretrain(recipe, extra, args.epochs, args.out.parent / "compare" / recipe)
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


if __name__ == "__main__":
    main()
