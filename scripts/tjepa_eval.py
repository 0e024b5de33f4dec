"""Reproduce the T-JEPA comparison for a config, end to end: pretrain, then MLP-on-raw vs MLP-on-T-JEPA vs trees.

    python scripts/tjepa_eval.py -c configs/tjepa_california.yaml
    python scripts/tjepa_eval.py -c configs/tjepa_breast_cancer.yaml --seeds 0 1 2 3 4 --heads mlp resnet
    python scripts/tjepa_eval.py -c configs/tjepa_csv.yaml --out my.json -- --data.init_args.path my.csv \\
        --data.init_args.target income --trainer.max_epochs 50

Everything after ``--`` goes to ``byol fit`` (config overrides). The
pretraining runs exactly as ``byol fit -c CONFIG`` (same seed, loggers and
checkpoints); then the frozen target encoder is evaluated with the paper's
downstream protocol (:func:`byol.eval.tabular.compare`) on the config's
train/validation/test splits. Prints a table and writes JSON (default:
``<trainer.default_root_dir>/tjepa_eval.json``). SIGTERM or SIGINT stops it
with exit code 143 / 130 and ``byol: interrupted by SIGTERM (last checkpoint:
PATH)`` (:func:`byol.core.signals.exit_on_interrupt`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from byol.cli import ByolCLI
from byol.core.signals import exit_on_interrupt
from byol.eval.tabular import HeadConfig, compare


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="a T-JEPA recipe (configs/tjepa_*.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="downstream seeds")
    parser.add_argument("--heads", nargs="+", default=["mlp"], choices=["mlp", "resnet"])
    parser.add_argument("--reduction", default="per_token", choices=["per_token", "flatten"],
                        help="T-JEPA tokens to head inputs: a linear map per token (paper) or flattened")
    parser.add_argument("--max-epochs", type=int, default=HeadConfig.max_epochs,
                        help="downstream epochs (early stopping)")
    parser.add_argument("--batch-size", type=int, default=HeadConfig.batch_size, help="downstream batch size")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and scikit-learn (1 is fastest on a busy machine)")
    parser.add_argument("--out", type=Path, default=None, help="JSON to write")
    args, rest = parser.parse_known_args(argv)
    return args, [a for a in rest if a != "--"]


def print_table(results: dict, title: str) -> None:
    higher_better = results["task"] == "classification"
    table = Table(title=title)
    table.add_column("model")
    table.add_column(("accuracy (%)" if higher_better else "RMSE") + ", test, mean ± std", justify="right")
    table.add_column("validation, mean", justify="right")
    table.add_column("seeds", justify="right")
    for name, s in results["models"].items():
        table.add_row(name, f"{s['test_mean']:.4f} ± {s['test_std']:.4f}", f"{s['val_mean']:.4f}", str(len(s["test"])))
    Console().print(table)


def main(argv: list[str] | None = None) -> dict:
    args, overrides = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        cli = ByolCLI(args=["--config", args.config, *overrides], run=False)
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        pretrain_s = time.perf_counter() - start
        data, pre = cli.datamodule, cli.datamodule.preprocessing
        if pre.task is None or data.val_set is None:
            raise SystemExit("the downstream comparison needs a target column and a validation split")
        start = time.perf_counter()
        results = compare(
            cli.model.backbone, data.train_set, data.val_set, data.test_set, pre.task, pre.num_classes,
            pre.cardinalities, args.seeds, args.heads, args.reduction,
            HeadConfig(batch_size=args.batch_size, max_epochs=args.max_epochs),
        )
    results.update(
        config=args.config, overrides=overrides, pretrain_seconds=round(pretrain_s, 1),
        downstream_seconds=round(time.perf_counter() - start, 1), pretrain_steps=cli.trainer.global_step,
        pretrain_epochs=cli.trainer.current_epoch, rows={"train": len(data.train_set), "val": len(data.val_set),
                                                         "test": len(data.test_set)},
        features=pre.feature_names,
    )
    out = args.out or Path(cli.trainer.default_root_dir) / "tjepa_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    title = f"{Path(args.config).stem}: {len(args.seeds)} seeds, T-JEPA pretrained {results['pretrain_seconds']} s"
    print_table(results, title)
    print(f"results written to {out}")
    return results


if __name__ == "__main__":
    with exit_on_interrupt():
        main()
