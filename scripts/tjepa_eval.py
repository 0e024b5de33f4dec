"""Reproduce the T-JEPA comparison for a config, end to end: pretrain, then MLP-on-raw vs MLP-on-T-JEPA vs trees.

    python scripts/tjepa_eval.py -c configs/tjepa_california.yaml
    python scripts/tjepa_eval.py -c configs/tjepa_breast_cancer.yaml --seeds 0 1 2 3 4 --heads mlp resnet
    python scripts/tjepa_eval.py -c configs/tjepa_csv.yaml --out my.json -- --data.init_args.path my.csv \\
        --data.init_args.target income --trainer.max_epochs 50

Everything after ``--`` goes to ``byol fit`` (config overrides). Before
pretraining, the table is checked for what the comparison needs (a target
column, a validation and a test split: :func:`byol.eval.tabular.check_tabular_data`).
The pretraining runs exactly as ``byol fit -c CONFIG`` (same seed, loggers and
checkpoints); the frozen target encoder is exported to
``<trainer.default_root_dir>/backbone`` and evaluated with the paper's
downstream protocol (:func:`byol.eval.tabular.tabular_protocol`, as
``byol eval tabular`` does for any exported backbone) on the config's
train/validation/test splits. Prints a table, writes JSON (default:
``<trainer.default_root_dir>/tjepa_eval.json``) and a record under
``backbone/results/`` (``byol results DIR/backbone`` lists them). SIGTERM or
SIGINT stops it with exit code 143 / 130 and ``byol: interrupted by SIGTERM
(last checkpoint: PATH)`` (:func:`byol.core.signals.exit_on_interrupt`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from byol.cli import ByolCLI
from byol.core.signals import exit_on_interrupt
from byol.eval.protocols import write_tabular_record
from byol.eval.tabular import HeadConfig, check_tabular_data, print_tabular_table, tabular_protocol
from byol.export import export_backbone


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


def main(argv: list[str] | None = None) -> dict:
    args, overrides = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        cli = ByolCLI(args=["--config", args.config, *overrides], run=False)
        data, model = cli.datamodule, cli.model
        try:
            check_tabular_data(data)  # before pretraining, not after
        except ValueError as err:
            raise SystemExit(f"tjepa_eval: error: {err}") from None
        start = time.perf_counter()
        cli.trainer.fit(model, data)
        pretrain_s = time.perf_counter() - start
        root = Path(cli.trainer.default_root_dir)
        backbone_dir = export_backbone(model.backbone, root / "backbone", model.export_preprocessing(),
                                       method=type(model).__name__, config=args.config,
                                       epochs=cli.trainer.current_epoch, global_step=cli.trainer.global_step)
        start = time.perf_counter()
        config = HeadConfig(batch_size=args.batch_size, max_epochs=args.max_epochs)
        results = tabular_protocol(model.backbone, data.preprocessing, data, args.seeds, args.heads, args.reduction,
                                   config)
    downstream_s = time.perf_counter() - start
    results.update(
        config=args.config, overrides=overrides, pretrain_seconds=round(pretrain_s, 1),
        downstream_seconds=round(downstream_s, 1), pretrain_steps=cli.trainer.global_step,
        pretrain_epochs=cli.trainer.current_epoch,
    )
    out = args.out or root / "tjepa_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    arguments = dict(seeds=args.seeds, heads=args.heads, reduction=args.reduction, max_epochs=args.max_epochs,
                     batch_size=args.batch_size)
    record = write_tabular_record(backbone_dir, results, data, arguments, downstream_s, type(model).__name__)
    title = f"{Path(args.config).stem}: {len(args.seeds)} seeds, T-JEPA pretrained {results['pretrain_seconds']} s"
    print_tabular_table(results, title)
    print(f"results written to {out} and {record}")
    return results


if __name__ == "__main__":
    with exit_on_interrupt():
        main()
