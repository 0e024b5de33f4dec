"""The demo: pretrain BYOL on scikit-learn's embedded digits, then compare its frozen features with a random init.

    python scripts/demo.py            (what `make demo` runs)

Prints a table, exports the backbone to checkpoints/demo/ and writes checkpoints/demo/metrics.json.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from byol.cli import ByolCLI
from byol.data import Digits
from byol.eval import (
    extract_features, few_shot_probe, knn_accuracy, linear_probe, plot_embedding_map, plot_training_curves,
)
from byol.export import export_backbone

ROOT = Path(__file__).resolve().parent.parent


def evaluate(backbone: torch.nn.Module, preprocess, size: int, shots: int, draws: int) -> dict:
    """Linear probe on all training labels and on ``shots`` labels per class, and weighted kNN, on held-out digits."""
    (trx, try_), (tex, tey) = (
        extract_features(backbone, Digits(split=s, size=size), preprocess, progress=False) for s in ("train", "test")
    )
    full = linear_probe(trx, try_, tex, tey)
    few_mean, few_std = few_shot_probe(trx, try_, tex, tey, shots=shots, draws=draws)
    knn = knn_accuracy(trx, try_, tex, tey, num_classes=10)
    return {"linear_top1": full.top1, "fewshot_top1": few_mean, "fewshot_std": few_std, "knn_top1": knn["top1"],
            "test_features": tex, "test_labels": tey}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/byol_digits.yaml"))
    parser.add_argument("--out", default=str(ROOT / "checkpoints/demo"))
    parser.add_argument("--max-epochs", type=int, default=None, help="override the config's trainer.max_epochs")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()

    cli_args = ["--config", args.config]
    if args.max_epochs is not None:
        cli_args += ["--trainer.max_epochs", str(args.max_epochs)]
    cli = ByolCLI(args=cli_args, run=False)
    model = cli.model
    random_backbone = copy.deepcopy(model.backbone)  # same architecture and seed, never trained
    cli.trainer.fit(model, datamodule=cli.datamodule)

    size = model.views.size
    model.cpu()
    results = {
        "byol": evaluate(model.backbone, model.views.preprocess, size, args.shots, args.draws),
        "random": evaluate(random_backbone, model.views.preprocess, size, args.shots, args.draws),
    }
    metrics = {
        "byol_linear_top1": round(results["byol"]["linear_top1"], 2),
        "random_linear_top1": round(results["random"]["linear_top1"], 2),
        f"byol_fewshot{args.shots}_top1": round(results["byol"]["fewshot_top1"], 2),
        f"random_fewshot{args.shots}_top1": round(results["random"]["fewshot_top1"], 2),
        "byol_knn_top1": round(results["byol"]["knn_top1"], 2),
        "random_knn_top1": round(results["random"]["knn_top1"], 2),
    }

    table = Table(title=f"Frozen features on held-out digits ({len(Digits(split='test'))} images), top-1 %")
    table.add_column("backbone")
    table.add_column("linear, all labels", justify="right")
    table.add_column(f"linear, {args.shots} labels/class ({args.draws} draws)", justify="right")
    table.add_column("kNN (k=200, T=0.1)", justify="right")
    for name, r in results.items():
        table.add_row(
            "BYOL" if name == "byol" else "random init",
            f"{r['linear_top1']:.1f}",
            f"{r['fewshot_top1']:.1f} ± {r['fewshot_std']:.1f}",
            f"{r['knn_top1']:.1f}",
        )
    Console().print(table)

    out = Path(args.out)
    export_backbone(
        model.backbone, out, model.export_preprocessing(),
        method="BYOL", recipe=Path(args.config).name, epochs=cli.trainer.current_epoch, metrics=metrics,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    byol_eval = results["byol"]
    plot_embedding_map(byol_eval["test_features"], byol_eval["test_labels"], out / "embedding_map.png",
                       [str(d) for d in range(10)], title="BYOL features of held-out digits (t-SNE)")
    log_dir = cli.trainer.log_dir
    if log_dir is not None and (Path(log_dir) / "metrics.csv").is_file():
        plot_training_curves(Path(log_dir) / "metrics.csv", out / "training_curves.png")
    print(f"backbone, metrics and plots written to {out}/")


if __name__ == "__main__":
    main()
