"""``byol linear-eval`` and ``byol knn-eval``: evaluate a pretrained backbone on a labeled dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.distributed as dist
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset

from ..data.table_rows import TableRows
from ..export import load_pretrained
from .augmented_linear import AugmentedLinearProbe
from .features import extract_features
from .knn import knn_accuracy
from .linear import DEFAULT_WEIGHT_DECAYS, linear_probe


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


def _report(title: str, results: dict[str, Any], backbone: str, name: str) -> Path:
    """Print a table and write ``results`` as JSON next to the backbone; returns the JSON path."""
    path = Path(backbone)
    out = (path / f"{name}.json") if path.is_dir() else path.with_name(f"{path.stem}.{name}.json")
    if _is_main():
        table = Table(title=title)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in results.items():
            if isinstance(value, (int, float)):
                table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
        Console().print(table)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {out}")
    return out


def linear_eval(
    backbone: str,
    train: Dataset | None = None,
    test: Dataset | None = None,
    protocol: Literal["cached", "augmented"] = "cached",
    batch_size: int = 256,
    num_workers: int = 4,
    val_fraction: float = 0.2,
    weight_decays: list[float] = list(DEFAULT_WEIGHT_DECAYS),
    epochs: int = 90,
    lr: float = 0.1,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Linear evaluation of a frozen backbone (an exported folder or a training ``.ckpt``).

    ``cached`` (default): features are extracted once (sharded over ranks when
    launched with ``torchrun``), standardised, and a softmax regression is fit
    for each weight decay; the weight decay is selected on a ``val_fraction``
    split of ``train``, never on ``test``. ``augmented``: the papers' protocol,
    random crops and flips on the fly for ``epochs`` epochs (images only).

    Returns:
        ``{"top1": %, "top5": %, ...}``, also written as JSON next to the backbone.
    """
    train, test = _require_splits(train, test)
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
    _report(f"Linear probe ({protocol}) of {backbone}", results, backbone, f"linear_eval_{type(test).__name__}")
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
    num_workers: int = 4,
    chunk_size: int = 1024,
    device: str = "auto",
) -> dict[str, Any]:
    """Weighted kNN (cosine similarity, ``exp(s / T)`` votes) of a frozen backbone's features.

    The training features form the bank; under ``torchrun`` each rank keeps
    only its shard of the bank and queries are processed in chunks.
    """
    train, test = _require_splits(train, test)
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
    _report(f"Weighted kNN (k={k}, T={temperature}) of {backbone}", results, backbone, f"knn_eval_{type(test).__name__}")
    return results
