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
from byol.eval import extract_features, few_shot_probe, linear_probe
from byol.export import export_backbone

ROOT = Path(__file__).resolve().parent.parent


def evaluate(backbone: torch.nn.Module, preprocess, size: int, shots: int, draws: int) -> dict[str, float]:
    """Linear probe on all training labels and on ``shots`` labels per class, on the held-out digits."""
    (trx, try_), (tex, tey) = (
        extract_features(backbone, Digits(split=s, size=size), preprocess, progress=False) for s in ("train", "test")
    )
    full = linear_probe(trx, try_, tex, tey)
    few_mean, few_std = few_shot_probe(trx, try_, tex, tey, shots=shots, draws=draws)
    return {"linear_top1": full.top1, "fewshot_top1": few_mean, "fewshot_std": few_std, "weight_decay": full.weight_decay}


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
    }

    table = Table(title=f"Frozen features on held-out digits ({len(Digits(split='test'))} images), top-1 %")
    table.add_column("backbone")
    table.add_column("linear, all labels", justify="right")
    table.add_column(f"linear, {args.shots} labels/class ({args.draws} draws)", justify="right")
    for name, r in results.items():
        table.add_row(
            "BYOL" if name == "byol" else "random init",
            f"{r['linear_top1']:.1f}",
            f"{r['fewshot_top1']:.1f} ± {r['fewshot_std']:.1f}",
        )
    Console().print(table)

    out = Path(args.out)
    export_backbone(
        model.backbone, out, model.export_preprocessing(),
        method="BYOL", recipe=Path(args.config).name, epochs=cli.trainer.current_epoch, metrics=metrics,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"backbone and metrics written to {out}/")


if __name__ == "__main__":
    main()
