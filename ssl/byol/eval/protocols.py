"""Evaluate a pretrained backbone (an exported folder or a training ``.ckpt``), without pretraining.

- ``byol linear-eval`` / ``byol knn-eval``: a linear probe or a weighted kNN on frozen features of labelled datasets;
- ``byol eval audio``: the BYOL-A papers' protocol (:mod:`byol.eval.audio`) on FSDD or a labelled audio set;
- ``byol eval tabular``: the T-JEPA paper's comparison (:mod:`byol.eval.tabular`) on a table's splits.

Every evaluation checks what it needs (datasets, labels, a validation split, a backbone of the right modality)
before anything long starts, prints a table, and adds a record under ``BACKBONE/results/``
(:mod:`byol.eval.results`; ``byol results BACKBONE`` lists them). Evaluation inputs are deterministic by default:
datasets that crop their samples (audio clips) are set to the centre crop unless ``--crop dataset`` keeps their own
setting; the record says which. DataLoader workers default to the machine's cores (:func:`default_num_workers`).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.distributed as dist
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ..core.checkpoint_io import read_checkpoint
from ..data.table_rows import TableRows
from ..data.tabular import TabularDataModule
from ..export import build_preprocess, load_pretrained, read_config
from .audio import (
    AudioData, FlattenedLogMel, audio_protocol, audio_summary, open_audio_data, print_audio_table, random_like,
)
from .augmented_linear import AugmentedLinearProbe
from .features import extract_features
from .knn import knn_accuracy
from .linear import DEFAULT_WEIGHT_DECAYS, linear_probe
from .results import dataset_label, describe_dataset, format_number, write_record
from .tabular import HeadConfig, check_tabular_data, print_tabular_table, tabular_protocol, tabular_summary

Crop = Literal["center", "dataset"]


def default_num_workers() -> int:
    """DataLoader workers for evaluation: 0 on a machine with one or two usable cores (a worker process costs more
    than it saves there, and Lightning warns about too many workers), else ``min(4, cores - 1)``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(4, cores - 1)


def _crop_owners(dataset: Dataset) -> list[Dataset]:
    """The datasets inside ``dataset`` (through ``Subset`` / ``ConcatDataset``) that crop their samples."""
    if isinstance(dataset, Subset):
        return _crop_owners(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        return [owner for d in dataset.datasets for owner in _crop_owners(d)]
    return [dataset] if isinstance(getattr(dataset, "crop", None), str) else []


def deterministic_inputs(datasets: dict[str, Dataset], crop: Crop = "center") -> dict[str, str]:
    """Make evaluation inputs the same on every run.

    With ``crop="center"`` every dataset that crops its samples (audio clips longer than a segment) is switched, in
    place, to its centre window; ``"dataset"`` keeps each dataset's own setting (a random crop only when asked for).

    Returns:
        ``{name: the crop in use}``; ``"fixed"`` for a dataset without a crop option (images are centre-cropped by
        the backbone's preprocessing).
    """
    out = {}
    for name, dataset in datasets.items():
        owners = _crop_owners(dataset)
        if crop == "center":
            for owner in owners:
                owner.crop = "center"
        out[name] = ",".join(sorted({owner.crop for owner in owners})) or "fixed"
    return out


def resolve_device(device: str) -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _init_distributed(device: torch.device) -> None:
    """Join the process group when launched by ``torchrun`` with more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def _require_splits(train: Dataset | None, test: Dataset | None) -> tuple[Dataset, Dataset]:
    """``train`` and ``test`` are keyword options on the command line (``--train.class_path ...``) but required."""
    missing = [name for name, ds in (("train", train), ("test", test)) if ds is None]
    if missing:
        raise ValueError(f"give the labeled datasets: --{' and --'.join(missing)} (class_path + init_args)")
    return train, test


def _backbone_inputs(preprocess: Any, *datasets: Dataset) -> tuple[Any, list[Dataset]]:
    """``(batch preprocess, datasets)``: raw table rows go through the backbone's fitted preprocessing once, here."""
    if not any(isinstance(ds, TableRows) for ds in datasets):
        return preprocess, list(datasets)
    if not all(isinstance(ds, TableRows) for ds in datasets):
        raise ValueError("give both splits as tables (byol.data.TableRows) or neither")
    return None, [ds.preprocessed(preprocess) for ds in datasets]


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _num_classes(*datasets: Dataset, labels: torch.Tensor) -> int:
    for ds in datasets:
        n = getattr(ds, "num_classes", None)
        if n:
            return int(n)
    return int(labels.max()) + 1


def _report(
    title: str, results: dict[str, Any], backbone: str, summary: dict[str, float], **record: Any
) -> Path | None:
    """Print ``results`` as a table and write an evaluation record (:func:`byol.eval.results.write_record`, which
    gets ``summary`` and ``record``) under the backbone's ``results/``; returns its path (``None`` off rank 0)."""
    if not _is_main():
        return None
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if isinstance(value, (int, float)):
            table.add_row(key, format_number(value))
    Console().print(table)
    out = write_record(backbone, metrics=results, summary=summary, **record)
    print(f"results written to {out}")
    return out


def _data_record(train: Dataset, test: Dataset) -> dict[str, Any]:
    described = {"train": describe_dataset(train), "test": describe_dataset(test)}
    return {"label": f"{dataset_label(described['train'])} -> {dataset_label(described['test'])}", **described}


def linear_eval(
    backbone: str,
    train: Dataset | None = None,
    test: Dataset | None = None,
    protocol: Literal["cached", "augmented"] = "cached",
    batch_size: int = 256,
    num_workers: int | None = None,
    val_fraction: float = 0.2,
    weight_decays: list[float] = list(DEFAULT_WEIGHT_DECAYS),
    epochs: int = 90,
    lr: float = 0.1,
    crop: Crop = "center",
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Linear evaluation of a frozen backbone (an exported folder or a training ``.ckpt``).

    ``cached`` (default): features are extracted once (sharded over ranks when
    launched with ``torchrun``), standardised, and a softmax regression is fit
    for each weight decay; the weight decay is selected on a ``val_fraction``
    split of ``train``, never on ``test``. ``augmented``: the papers' protocol,
    random crops and flips on the fly for ``epochs`` epochs (images only).

    Args:
        num_workers: DataLoader workers (default: :func:`default_num_workers`).
        crop: ``center`` (default): datasets that crop their samples (audio) use the centre window, so the
            features are the same on every run; ``dataset``: keep the datasets' own setting.

    Returns:
        ``{"top1": %, "top5": %, ...}``, also written as a record under ``BACKBONE/results/``.
    """
    start = time.perf_counter()
    train, test = _require_splits(train, test)
    inputs = deterministic_inputs({"train": train, "test": test}, crop)
    num_workers = default_num_workers() if num_workers is None else num_workers
    dev = resolve_device(device)
    _init_distributed(dev)
    model, preprocess, config = load_pretrained(backbone, dev)
    preprocess, (train_inputs, test_inputs) = _backbone_inputs(preprocess, train, test)
    if protocol == "augmented":
        if preprocess is None:
            raise ValueError("--protocol augmented crops images; evaluate tables with --protocol cached")
        results = _augmented(model, preprocess, train, test, batch_size, num_workers, epochs, lr, seed, dev)
    else:
        kw = dict(preprocess=preprocess, batch_size=batch_size, num_workers=num_workers, device=dev)
        trx, try_ = extract_features(model, train_inputs, **kw)
        tex, tey = extract_features(model, test_inputs, **kw)
        probe = linear_probe(trx, try_, tex, tey, _num_classes(train_inputs, test_inputs, labels=try_),
                             tuple(weight_decays), val_fraction, seed)
        results = {"top1": probe.top1, "top5": probe.top5, "weight_decay": probe.weight_decay,
                   "val_top1": probe.val_top1, "val_top1_per_weight_decay": probe.val_top1_per_weight_decay}
    results = {**results, "protocol": protocol, "train": type(train).__name__, "test": type(test).__name__,
               "num_train": len(train), "num_test": len(test), "method": config.get("method")}
    arguments = dict(protocol=protocol, batch_size=batch_size, num_workers=num_workers, crop=crop, seed=seed)
    arguments.update(dict(epochs=epochs, lr=lr) if protocol == "augmented" else
                     dict(val_fraction=val_fraction, weight_decays=list(weight_decays)))
    summary = {k: results[k] for k in ("top1", "top5") if results.get(k) is not None}
    _report(f"Linear probe ({protocol}) of {backbone}", results, backbone, summary, protocol=f"linear/{protocol}",
            data=_data_record(train, test), arguments=arguments, inputs=inputs, method=config.get("method"),
            seconds=time.perf_counter() - start)
    return results


def _augmented(model, preprocess, train, test, batch_size, num_workers, epochs, lr, seed, device) -> dict[str, float]:
    """Train the head with Lightning (DDP under ``torchrun``), then score the test split exactly once per sample
    with the sharded feature extraction (a distributed sampler would pad the split with repeated samples)."""
    num_classes = getattr(train, "num_classes", None) or getattr(test, "num_classes", None)
    if not num_classes:
        raise ValueError(f"{type(train).__name__} has no num_classes attribute; --protocol augmented needs it")
    L.seed_everything(seed)
    probe = AugmentedLinearProbe(model, preprocess, int(num_classes), lr=lr)
    world, local = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    trainer = L.Trainer(max_epochs=epochs, accelerator=device.type, devices=local, num_nodes=world // local,
                        logger=False, enable_checkpointing=False, limit_val_batches=0)
    loader = dict(batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0)
    trainer.fit(probe, DataLoader(train, shuffle=True, drop_last=True, **loader))
    classifier = torch.nn.Sequential(probe.backbone, probe.head)
    logits, labels = extract_features(classifier, test, preprocess, batch_size, num_workers, device)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return {"top1": 100 * (top5[:, 0] == labels).float().mean().item(),
            "top5": 100 * (top5 == labels[:, None]).any(1).float().mean().item()}


def knn_eval(
    backbone: str,
    train: Dataset | None = None,
    test: Dataset | None = None,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 256,
    num_workers: int | None = None,
    chunk_size: int = 1024,
    crop: Crop = "center",
    device: str = "auto",
) -> dict[str, Any]:
    """Weighted kNN (cosine similarity, ``exp(s / T)`` votes) of a frozen backbone's features.

    The training features form the bank; under ``torchrun`` each rank keeps
    only its shard of the bank and queries are processed in chunks. ``num_workers`` and ``crop`` as for
    :func:`linear_eval`; the result is also written as a record under ``BACKBONE/results/``.
    """
    start = time.perf_counter()
    train, test = _require_splits(train, test)
    inputs = deterministic_inputs({"train": train, "test": test}, crop)
    num_workers = default_num_workers() if num_workers is None else num_workers
    dev = resolve_device(device)
    _init_distributed(dev)
    model, preprocess, config = load_pretrained(backbone, dev)
    preprocess, (train_inputs, test_inputs) = _backbone_inputs(preprocess, train, test)
    kw = dict(preprocess=preprocess, batch_size=batch_size, num_workers=num_workers, device=dev)
    bank, bank_y = extract_features(model, train_inputs, gather=False, **kw)  # this rank's shard of the bank
    queries, query_y = extract_features(model, test_inputs, **kw)
    num_classes = _num_classes(train_inputs, test_inputs, labels=query_y)
    acc = knn_accuracy(bank, bank_y, queries, query_y, num_classes, k=k, temperature=temperature, chunk_size=chunk_size)
    results = {**acc, "k": k, "temperature": temperature, "train": type(train).__name__, "test": type(test).__name__,
               "method": config.get("method")}
    arguments = dict(k=k, temperature=temperature, batch_size=batch_size, num_workers=num_workers, crop=crop)
    summary = {key: acc[key] for key in ("top1", "top5") if acc.get(key) is not None}
    _report(f"Weighted kNN (k={k}, T={format_number(temperature)}) of {backbone}", results, backbone, summary,
            protocol="knn", data=_data_record(train, test), arguments=arguments, inputs=inputs,
            method=config.get("method"), seconds=time.perf_counter() - start)
    return results


# ----- downstream protocols: audio and tables ----------------------------------------------------------------


def require_modality(backbone: str | Path, expected: str, command: str) -> dict[str, Any]:
    """The backbone's preprocessing config (from its ``config.json``, or its ``.ckpt``), after checking that it takes
    the inputs ``command`` evaluates: ``expected`` is the preprocessing's class name (e.g. ``LogMelPreprocess``);
    raises a ``ValueError`` otherwise. Weights are not loaded."""
    path = Path(backbone)
    config = (read_checkpoint(path).get("byol") or {}) if path.suffix == ".ckpt" else read_config(path)
    preprocessing = config.get("preprocessing") or {}
    if preprocessing.get("class") != expected:
        raise ValueError(f"{command} needs a backbone whose preprocessing is {expected}; {backbone} takes "
                         f"{preprocessing.get('class')} inputs (config.json: preprocessing.class)")
    return preprocessing


def write_audio_record(
    backbone: str | Path, results: dict[str, Any], data: AudioData, datasets: dict[str, Dataset],
    arguments: dict[str, Any], seconds: float, method: str | None = None,
) -> Path:
    """The record of an audio evaluation (:func:`byol.eval.audio.audio_protocol`'s results) of ``backbone``."""
    label = f"FSDD {Path(data.root).name}" if results["kind"] == "fsdd" else \
        f"{Path(data.root).name} -> {Path(str(data.test)).name}"
    described = {"label": label, **asdict(data), "datasets": {k: describe_dataset(d) for k, d in datasets.items()}}
    return write_record(backbone, f"audio/{results['kind']}", described, arguments, results, audio_summary(results),
                        seconds, inputs={"crop": "center", "clips": "whole (segments averaged)"}, method=method)


def eval_audio(
    backbone: str,
    data: AudioData,
    baselines: list[Literal["random", "logmel"]] = [],
    repeats: int = 5,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """``byol eval audio``: the BYOL-A papers' linear protocol for an audio backbone (:mod:`byol.eval.audio`).

    Whole clips are embedded (segments averaged) after pre-normalising the log-mels with the training split's
    statistics; a linear layer is trained with early stopping, ``repeats`` times (mean ± std), with the L-BFGS probe
    as a second opinion. On FSDD (``--data.root`` only): the conventional split and each speaker held out; on
    another labelled set: ``--data.root`` (training clips) and ``--data.test``.

    Args:
        backbone: an exported audio backbone folder (or a ``.ckpt``).
        data: the labelled audio (``--data.root``, ``--data.test``, ``--data.segment_seconds``).
        baselines: also evaluate ``random`` (the same architecture, freshly initialised with ``seed``) and/or
            ``logmel`` (the raw log-mel values).
        repeats: runs of the protocol on the conventional / given split.
        num_workers: DataLoader workers (default: :func:`default_num_workers`).
    """
    start = time.perf_counter()
    preprocessing = require_modality(backbone, "LogMelPreprocess", "byol eval audio")
    datasets = open_audio_data(data, build_preprocess(preprocessing, backbone).sample_rate)
    num_workers = default_num_workers() if num_workers is None else num_workers
    dev = resolve_device(device)
    model, preprocess, config = load_pretrained(backbone, dev)
    encoders: dict[str, nn.Module] = {"backbone": model}
    if "random" in baselines:
        encoders["random"] = random_like(model, seed)
    if "logmel" in baselines:
        encoders["logmel"] = FlattenedLogMel()
    results = audio_protocol(encoders, preprocess, data, datasets, repeats, batch_size, num_workers, dev, seed)
    print_audio_table(results, f"{backbone}: linear classifier on frozen features, test accuracy %")
    arguments = dict(baselines=list(baselines), repeats=repeats, batch_size=batch_size, num_workers=num_workers,
                     seed=seed)
    out = write_audio_record(backbone, results, data, datasets, arguments, time.perf_counter() - start,
                             config.get("method"))
    print(f"results written to {out}")
    return results


def write_tabular_record(
    backbone: str | Path, results: dict[str, Any], data: TabularDataModule, arguments: dict[str, Any],
    seconds: float, method: str | None = None,
) -> Path:
    """The record of a tabular evaluation (:func:`byol.eval.tabular.tabular_protocol`'s results) of ``backbone``."""
    source = data.splits.source
    described = {"label": f"{Path(source).name} ({data.splits.target})", "class": type(data).__name__,
                 "source": source, "target": data.splits.target, "rows": results.get("rows")}
    unit = "accuracy %" if results["task"] == "classification" else "rmse"
    return write_record(backbone, "tabular", described, arguments, results, tabular_summary(results), seconds,
                        unit=unit, inputs={"rows": "the backbone's fitted preprocessing"}, method=method)


def eval_tabular(
    backbone: str,
    data: TabularDataModule | None = None,
    seeds: list[int] = [0, 1, 2, 3, 4],
    heads: list[Literal["mlp", "resnet"]] = ["mlp"],
    reduction: Literal["per_token", "flatten"] = "per_token",
    max_epochs: int = HeadConfig.max_epochs,
    batch_size: int = HeadConfig.batch_size,
    threads: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """``byol eval tabular``: the T-JEPA paper's downstream comparison for a tabular backbone.

    The same head (an MLP, or a ResNet) is trained with early stopping on the validation split on the frozen
    backbone's tokens and on the raw features, against gradient-boosted trees; test scores (accuracy % or RMSE)
    are mean ± std over ``seeds`` (:mod:`byol.eval.tabular`).

    Args:
        backbone: an exported tabular backbone folder (or a ``.ckpt``); its fitted preprocessing turns the rows
            into its inputs.
        data: the table with its train/validation/test splits and target column (a ``byol.data.tabular``
            datamodule: ``--data.class_path ... --data.init_args.target COLUMN``).
        seeds: one run of every model per seed.
        heads: ``mlp`` and/or ``resnet``.
        reduction: tokens to head inputs: a linear map per token (the paper) or flattened.
        max_epochs, batch_size: of the heads' training (early stopping on the validation loss).
        threads: CPU threads for torch and scikit-learn (1 is often fastest for small tables and on a busy
            machine; default: theirs).
    """
    start = time.perf_counter()
    if data is None:
        raise ValueError("give the table: --data.class_path byol.data.tabular.TableFileDataModule "
                         "--data.init_args.path FILE --data.init_args.target COLUMN")
    require_modality(backbone, "TabularPreprocessing", "byol eval tabular")
    check_tabular_data(data)
    dev = resolve_device(device)
    model, preprocessing, config = load_pretrained(backbone, dev)
    torch_threads = torch.get_num_threads()
    try:
        with threadpool_limits(threads):
            if threads is not None:
                torch.set_num_threads(threads)
            results = tabular_protocol(model, preprocessing, data, seeds, heads, reduction,
                                       HeadConfig(batch_size=batch_size, max_epochs=max_epochs), device=str(dev))
    finally:
        torch.set_num_threads(torch_threads)
    print_tabular_table(results, f"{backbone} on {Path(data.splits.source).name}: {len(seeds)} seeds")
    arguments = dict(seeds=list(seeds), heads=list(heads), reduction=reduction, max_epochs=max_epochs,
                     batch_size=batch_size, threads=threads)
    out = write_tabular_record(backbone, results, data, arguments, time.perf_counter() - start, config.get("method"))
    print(f"results written to {out}")
    return results
