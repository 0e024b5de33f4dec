"""The ``byol`` command.

- ``byol fit -c configs/<recipe>.yaml`` (and ``validate``/``test``): pretraining through LightningCLI,
  every constructor argument is a config key.
- ``byol linear-eval``, ``byol knn-eval``: evaluate a pretrained backbone (exported folder or ``.ckpt``).
- ``byol export RUN.ckpt OUT_DIR``: write the backbone as safetensors + config.json.
- ``byol plot-curves RUN_DIR OUT.png``, ``byol plot-embeddings BACKBONE --data ... OUT.png``,
  ``byol plot-views AUDIO OUT.png`` (a log-mel and its two BYOL-A views).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from jsonargparse import CLI
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import Dataset

from .core.base import OnlineTargetModule
from .data.datamodule import DataModule
from .eval.protocols import knn_eval, linear_eval


class ByolCLI(LightningCLI):
    """LightningCLI over any :class:`OnlineTargetModule` and any datamodule, chosen by ``class_path``.

    Every constructor argument is a config key. The method builds its own
    optimizer from its ``optimizer`` argument, so the CLI's automatic
    optimizer options are off.
    """

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        # Methods make views in on_after_batch_transfer on purpose; Lightning warns about that with a datamodule.
        warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
        super().__init__(
            OnlineTargetModule,
            DataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            args=args,
            **kwargs,
        )


def export(checkpoint: Path, out_dir: Path) -> None:
    """Export the backbone of a training checkpoint: OUT_DIR/model.safetensors and OUT_DIR/config.json.

    Args:
        checkpoint: a ``.ckpt`` written by ``byol fit``.
        out_dir: folder to write (created if missing).
    """
    from .export import export_checkpoint

    out = export_checkpoint(checkpoint, out_dir)
    print(f"backbone exported to {out}/")


def plot_curves(run_dir: Path, out: Path, keys: list[str] | None = None) -> None:
    """Plot the training curves of a run (its CSV log) to a PNG.

    Args:
        run_dir: the run's folder (searched for the newest metrics.csv) or a metrics.csv file.
        out: PNG to write.
        keys: metrics to plot (default: loss, probe accuracy, rank, std, tau, lr when logged).
    """
    from .eval.plots import find_metrics_csv, plot_training_curves

    csv = run_dir if run_dir.suffix == ".csv" else find_metrics_csv(run_dir)
    print(f"wrote {plot_training_curves(csv, out, keys)}")


def plot_embeddings(
    backbone: str, out: Path, data: Dataset | None = None, max_points: int = 5000, device: str = "auto"
) -> None:
    """Map a backbone's features of a labeled dataset to 2-D with t-SNE, coloured by label, saved as PNG.

    Args:
        backbone: exported folder or training ``.ckpt``.
        data: the dataset (``class_path`` + ``init_args``).
        out: PNG to write.
        max_points: random subset size for t-SNE.
    """
    from .eval.features import extract_features
    from .eval.plots import plot_embedding_map
    from .eval.protocols import resolve_device
    from .export import load_pretrained

    if data is None:
        raise ValueError("give the labeled dataset: --data.class_path ... --data.init_args...")
    dev = resolve_device(device)
    model, preprocess, _ = load_pretrained(backbone, dev)
    feats, labels = extract_features(model, data, preprocess, device=dev)
    names = getattr(data, "classes", None) or None
    print(f"wrote {plot_embedding_map(feats, labels, out, names, title=f'{Path(backbone).name}: {type(data).__name__}', max_points=max_points)}")


def plot_views(audio: Path, out: Path, version: str = "v2", background: list[Path] | None = None, seed: int = 0) -> None:
    """Plot the log-mel of an audio file and two BYOL-A views of it to a PNG.

    Args:
        audio: a wav/flac/ogg file.
        out: PNG to write.
        version: ``v1`` or ``v2`` augmentation pipeline.
        background: other clips that fill the mixup memory.
    """
    from .eval.audio_plots import plot_audio_views

    print(f"wrote {plot_audio_views(audio, out, version, background or (), seed)}")


TOOLS = {
    "linear-eval": linear_eval,
    "knn-eval": knn_eval,
    "export": export,
    "plot-curves": plot_curves,
    "plot-embeddings": plot_embeddings,
    "plot-views": plot_views,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``byol`` console script (``argv`` defaults to the command line)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in TOOLS:
        CLI(TOOLS, args=args)
    else:
        ByolCLI(args=argv)


if __name__ == "__main__":
    main()
