"""BYOL-A on the Free Spoken Digit Dataset, end to end: pretrain, then compare frozen features with two baselines.

    python scripts/byola_fsdd.py                       (FSDD in ../shared/data/fsdd; CPU, a few minutes)
    python scripts/byola_fsdd.py --fsdd /data/fsdd --out checkpoints/byola_fsdd

0. Checks the FSDD copy (both splits, several speakers) before anything starts.
1. Pretrains BYOL-A with configs/byola_fsdd.yaml on the 2,700 training recordings (labels unused).
2. Exports the backbone to OUT/backbone (byol.load_backbone reads it).
3. Evaluates, with the papers' linear protocol (byol.eval.audio.audio_protocol, which ``byol eval audio`` runs for
   any exported backbone), three encoders: the BYOL-A backbone, the same architecture at the random initialisation
   BYOL-A started from, and the raw log-mel values: on the conventional split (train on indices 5-49, test on 0-4;
   mean ± std of 5 runs, and the deterministic L-BFGS probe as a second opinion) and leaving one speaker out
   (mean ± std over the six speakers).

Prints a table, writes OUT/fsdd_results.json and a record under OUT/backbone/results/ (``byol results
OUT/backbone`` lists them). SIGTERM or SIGINT stops it with exit code 143 / 130 and
``byol: interrupted by SIGTERM (last checkpoint: PATH)`` (:func:`byol.core.signals.exit_on_interrupt`).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from byol.cli import ByolCLI
from byol.core.signals import exit_on_interrupt
from byol.eval.audio import AudioData, FlattenedLogMel, audio_protocol, open_audio_data, print_audio_table
from byol.eval.protocols import write_audio_record
from byol.export import export_backbone

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"byola": "BYOL-A (AudioNTT2020)", "random": "random init (same architecture)", "logmel": "raw log-mel, linear"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/byola_fsdd.yaml"))
    parser.add_argument("--fsdd", default=str(ROOT.parent / "shared/data/fsdd"), help="FSDD folder (or its recordings/)")
    parser.add_argument("--out", default=str(ROOT / "checkpoints/byola_fsdd"))
    parser.add_argument("--max-epochs", type=int, default=None, help="override the config's trainer.max_epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the linear evaluation")
    args = parser.parse_args()
    out = Path(args.out)

    cli_args = ["--config", args.config, "--trainer.default_root_dir", str(out / "run"),
                "--data.init_args.train.init_args.root", args.fsdd, "--data.init_args.val.init_args.root", args.fsdd]
    if args.max_epochs is not None:
        cli_args += ["--trainer.max_epochs", str(args.max_epochs)]
    cli = ByolCLI(args=cli_args, run=False)
    model = cli.model
    views = model.views
    data = AudioData(root=args.fsdd, segment_seconds=views.segment_samples / views.front_end.sample_rate)
    datasets = open_audio_data(data, views.front_end.sample_rate)  # the evaluation's data, checked before pretraining
    random_backbone = copy.deepcopy(model.backbone)  # the initialisation BYOL-A starts from, never trained
    start = time.time()
    cli.trainer.fit(model, datamodule=cli.datamodule)
    pretrain_s = time.time() - start

    model.cpu()
    backbone_dir = export_backbone(model.backbone, out / "backbone", model.export_preprocessing(), method="BYOLA",
                                   config=str(args.config), epochs=cli.trainer.current_epoch,
                                   global_step=cli.trainer.global_step)
    start = time.time()
    encoders = {"byola": model.backbone, "random": random_backbone, "logmel": FlattenedLogMel()}
    results = audio_protocol(encoders, views.preprocessing, data, datasets, seed=args.seed)
    eval_s = time.time() - start
    results.update(config=str(args.config), epochs=cli.trainer.current_epoch, global_step=cli.trainer.global_step,
                   pretrain_seconds=round(pretrain_s), eval_seconds=round(eval_s))

    print_audio_table(results, "FSDD: linear classifier on frozen features, test accuracy %", NAMES)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fsdd_results.json").write_text(json.dumps(results, indent=2) + "\n")
    record = write_audio_record(backbone_dir, results, data, datasets, {"repeats": 5, "seed": args.seed}, eval_s,
                                "BYOLA")
    print(f"pretraining {pretrain_s:.0f} s, evaluation {results['eval_seconds']} s; "
          f"backbone in {backbone_dir}/, results in {out / 'fsdd_results.json'} and {record}")


if __name__ == "__main__":
    with exit_on_interrupt():
        main()
