"""The ``byol`` command.

- ``byol fit -c configs/<recipe>.yaml`` (and ``validate``/``test``): pretraining through LightningCLI,
  every constructor argument is a config key.
- ``byol linear-eval``, ``byol knn-eval``: evaluate a pretrained backbone (exported folder or ``.ckpt``).
- ``byol eval audio BACKBONE --data.root FSDD_OR_FOLDER``, ``byol eval tabular BACKBONE --data ...``: the BYOL-A
  papers' and the T-JEPA paper's downstream protocols (:mod:`byol.eval.protocols`).
- ``byol results BACKBONE [--plot OUT.png]``: every evaluation record of a backbone (:mod:`byol.eval.results`).
- ``byol export RUN.ckpt OUT_DIR``: write the backbone as safetensors + config.json.
- ``byol import FILE OUT_DIR`` (BYOL-A, I-JEPA, DINO) or ``byol import timm:NAME OUT_DIR --weights FILE``:
  released weights as such a folder (:mod:`byol.weights_import`).
- ``byol plot-curves RUN_DIR OUT.png``, ``byol plot-embeddings BACKBONE --data ... OUT.png``,
  ``byol plot-views AUDIO OUT.png`` (a log-mel and its two BYOL-A views).

A failure ends in one line, ``byol: error: ...``, that names the file, key or
path at fault; ``BYOL_DEBUG=1`` shows the full traceback instead. SIGTERM and
SIGINT end a command with exit code 143 / 130 and one line,
``byol: interrupted by SIGTERM (last checkpoint: PATH)`` (:mod:`byol.core.signals`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from jsonargparse import CLI, Namespace
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import Dataset

from .core.base import Method
from .core.host_memory import reuse_freed_host_memory
from .core.signals import NoteCheckpointOnInterrupt, exit_on_interrupt
from .data.datamodule import DataModule
from .eval.protocols import eval_audio, eval_tabular, knn_eval, linear_eval
from .eval.results import show_results
from .weights_import import import_command


class ByolCLI(LightningCLI):
    """LightningCLI over any :class:`byol.core.Method` and any datamodule, chosen by ``class_path``.

    Every constructor argument is a config key. The method builds its own
    optimizer from its ``optimizer`` argument, so the CLI's automatic
    optimizer options are off.

    Everything a run writes lands under ``trainer.default_root_dir`` (the
    recipes: ``checkpoints/runs/<recipe>``): unless ``trainer.logger`` is set,
    the run logs to CSV (``DIR/csv/version_N/``, with its checkpoints and
    ``config.yaml``) and to wandb offline (``DIR/wandb/``). ``fit`` checks
    that the folder is writable before anything starts. Every trainer also gets
    a :class:`~byol.core.signals.NoteCheckpointOnInterrupt` callback (not a
    config key), so an interrupted run names its last checkpoint.
    """

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        defaults = dict(kwargs.get("trainer_defaults") or {})
        callbacks = defaults.get("callbacks", [])
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        kwargs["trainer_defaults"] = {**defaults, "callbacks": [*callbacks, NoteCheckpointOnInterrupt()]}
        # Methods make views in on_after_batch_transfer on purpose; Lightning warns about that with a datamodule.
        warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
        reuse_freed_host_memory()
        super().__init__(
            Method,
            DataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            args=args,
            **kwargs,
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(config.trainer.default_root_dir or ".")
        if self.subcommand == "fit":
            ensure_writable(root, "--trainer.default_root_dir")
        if config.trainer.logger in (None, True):
            config.trainer.logger = default_loggers(root)


def default_loggers(root: Path) -> list[Namespace]:
    """CSV (``root/csv/version_N``) and offline wandb (``root/wandb``, run named after ``root``) logger configs."""
    csv = Namespace(class_path="lightning.pytorch.loggers.CSVLogger", init_args=Namespace(save_dir=str(root), name="csv"))
    wandb = Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(
        save_dir=str(root), project="byol", name=root.resolve().name, offline=True))
    return [csv, wandb]


def ensure_writable(folder: Path, key: str) -> None:
    """Create ``folder`` and write a file in it, or raise an error that names ``key`` and the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PermissionError(f"{key} {folder} is not a writable folder ({err.strerror}); give another folder") from err


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
    "eval": {"audio": eval_audio, "tabular": eval_tabular},
    "results": show_results,
    "export": export,
    "import": import_command,
    "plot-curves": plot_curves,
    "plot-embeddings": plot_embeddings,
    "plot-views": plot_views,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``byol`` console script (``argv`` defaults to the command line).

    An exception ends the program with exit code 1 and one line on stderr,
    ``byol: error: <message>`` (see :func:`error_line`); with ``BYOL_DEBUG=1`` in
    the environment the exception propagates with its full traceback. SIGTERM
    or SIGINT ends it with exit code ``128 + signal`` and one line,
    ``byol: interrupted by SIGTERM (last checkpoint: PATH)`` (see
    :func:`byol.core.signals.exit_on_interrupt`).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    with exit_on_interrupt():
        try:
            if args and args[0] in TOOLS:
                CLI(TOOLS, args=args)
            else:
                ByolCLI(args=argv)  # None: LightningCLI reads sys.argv itself
        except Exception as err:
            if os.environ.get("BYOL_DEBUG", "") not in ("", "0"):
                raise
            sys.stderr.flush()
            print(f"byol: error: {error_line(err)} (BYOL_DEBUG=1 shows the traceback)", file=sys.stderr)
            raise SystemExit(1) from None


def error_line(err: BaseException) -> str:
    """One line that says what went wrong: the message of the exception at fault, not of its wrappers.

    The config parser reports a constructor's exception (a dataset that finds a
    corrupt file, a model with a wrong argument) inside a "Does not validate
    against any of the Union subtypes" error, with the original as its cause;
    the first exception in the ``__cause__`` chain that the parser did not
    raise is the one at fault. A DataLoader worker's exception carries the
    worker's traceback in its message: its last line is the message.
    """
    chain, e = [], err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__
    culprit = next((e for e in chain if not _raised_in(e, "jsonargparse")), chain[-1])
    lines = [line.strip() for line in str(culprit).splitlines() if line.strip()]
    if not lines:
        return type(culprit).__name__
    if any(line.startswith("Original Traceback") for line in lines):
        return lines[-1]  # "ValueError: ..." as the worker raised it
    named = isinstance(culprit, (ValueError, OSError, RuntimeError)) and not isinstance(culprit, FileNotFoundError)
    return lines[0] if named else f"{type(culprit).__name__}: {lines[0]}"


def _raised_in(err: BaseException, package: str) -> bool:
    """Whether the innermost frame of ``err``'s traceback is in ``package``."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and f"{os.sep}{package}{os.sep}" in frames[-1].filename


if __name__ == "__main__":
    main()
