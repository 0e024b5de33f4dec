"""Benchmarks of byol's hot paths, each comparison measured side by side in this one process.

    python scripts/bench.py                          # what `make bench` runs: every section, sizes for the device
    python scripts/bench.py --device cuda            # GPU sizes: ResNet-18 batch 512 at 32 px, ResNet-50 256 at 224
    python scripts/bench.py --only ema,step --out checkpoints/runs/bench_ema.json

Sections (``--only``, comma-separated):

    ema      fused EMA update (``byol.core.ema_update``) vs a per-parameter Python loop, ResNet-18/50 + projector
    lars     timm's LARS step as the recipes set it, multi-tensor (its CUDA default) vs per parameter (its CPU one)
    views    our views on the device vs the same recipe per sample: torchvision v2 and lightly's BYOLTransform
             (one thread each on a CPU; in workers on a GPU), at 32, 96 and 224 px; DINO's multi-crop views vs
             lightly's DINOTransform
    step     BYOL training step (views, forward, backward, optimizer, EMA): fp32/bf16, channels_last, torch.compile;
             peak memory, training FLOPs per image and achieved FLOP/s (fraction of peak on known GPUs)
    e2e      one epoch on CIFAR-10-sized uint8 data: byol.BYOL in a Lightning Trainer vs a plain loop with
             torchvision per-sample augmentation in workers and a per-parameter EMA
    loader   the step fed by the training DataLoader (in-memory uint8 at 32 px; JPEG files decoded in workers at
             224 px) vs the same step on a batch already on the device: how much the data loader costs
    audio    BYOL-A log-mel front end + augmentations batched on the device vs per sample in workers
    tabular  T-JEPA pretraining steps (rows/s) with 10, 50 and 200 numeric features

Timing: every compared function is called ``warmup`` times first (not timed), then ``repeats`` rounds call each of
them in turn (so a change in machine load hits all alike); a row reports the median. CUDA is synchronised around
each call. Sizes depend on the device and ``--quick`` (the default on CPU, where the full sizes take far too long);
all of them are written to the JSON with the machine, the versions and the thread count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import kornia
import lightning as L
import timm
from timm.optim import Lars
import torch
import torchaudio
import torchvision
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import v2

from byol import BYOL, TJEPA, TimmBackbone
from byol.core import ema_update
from byol.core.host_memory import reuse_freed_host_memory
from byol.data import DataModule, ImageFolder
from byol.losses import symmetric_byol_loss
from byol.methods.tjepa import jepa_loss
from byol.models.tabular import TabularTransformer, TJEPAPredictor
from byol.models.tokens import gather_tokens
from byol.views import BYOLAViews, BYOLImageViews, DINOImageViews, SmallImageViews
from byol.views.image import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, default_blur_kernel_size

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("ema", "lars", "views", "step", "e2e", "loader", "audio", "tabular")
console = Console(width=None if sys.stdout.isatty() else 200)  # a log file gets the whole table

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets, matched by substring of the
# device name, most specific first. Fractions of peak are reported only for these devices and bf16 rows.
BF16_DENSE_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


# ----- sizes ----------------------------------------------------------------------------------------------------
@dataclass
class Sizes:
    """Every size the benchmarks use (recorded in the JSON). See :func:`sizes_for`."""

    repeats: int  # timed rounds of the views, audio and tabular comparisons
    ema_repeats: int
    views: list[tuple[int, int, int]]  # (output px, batch, batches per timed pass)
    multi_crop: tuple[int, int]  # DINO's multi-crop views: (batch, batches per timed pass)
    step_batch: dict[str, int]  # per model: images per training step
    step_repeats: dict[str, int]
    step_compile: tuple[str, ...]  # models whose torch.compile rows are measured
    e2e_images: int
    e2e_batch: int
    e2e_epochs: int  # timed epochs, after a warm-up of e2e_warmup_batches
    e2e_warmup_batches: int
    e2e_model_kwargs: dict[str, Any] = field(default_factory=dict)  # timm kwargs of the ResNet-18 (narrower on CPU)
    audio_batch: int = 256
    audio_batches: int = 4
    tabular_batch: int = 512
    tabular_features: tuple[int, ...] = (10, 50, 200)
    loader_steps: int = 30  # timed steps per round, after the loader's queue has reached its steady state
    loader_rounds: int = 3
    loader_jpegs: int = 2048  # distinct JPEG files of the image-folder row (read repeatedly)


def sizes_for(device: torch.device, quick: bool) -> Sizes:
    """Full sizes on CUDA (ResNet-18 batch 512 at 32 px, ResNet-50 batch 256 at 224 px); on CPU, sizes that finish
    in minutes on 2 cores (``quick``) or reduced batches (64 at 32 px, 8 at 224 px) with the real ResNet-18 end to end (``--no-quick``)."""
    if device.type == "cuda":
        return Sizes(
            repeats=5 if quick else 10, ema_repeats=50,
            views=[(32, 512, 4 if quick else 8), (96, 256, 2 if quick else 4), (224, 256, 2 if quick else 4)],
            multi_crop=(128, 2 if quick else 4),
            step_batch={"resnet18": 512, "resnet50": 256}, step_repeats={"resnet18": 10, "resnet50": 10},
            step_compile=("resnet18", "resnet50"), e2e_images=10_000 if quick else 50_000, e2e_batch=512,
            e2e_epochs=1 if quick else 2, e2e_warmup_batches=20, audio_batch=256, audio_batches=8,
            tabular_batch=512, loader_steps=30 if quick else 60, loader_rounds=3, loader_jpegs=2048,
        )
    if quick:
        return Sizes(
            repeats=3, ema_repeats=10, views=[(32, 64, 2), (96, 32, 2), (224, 8, 2)], multi_crop=(8, 2),
            step_batch={"resnet18": 16, "resnet50": 2}, step_repeats={"resnet18": 3, "resnet50": 2},
            step_compile=("resnet18",), e2e_images=512, e2e_batch=64, e2e_epochs=2, e2e_warmup_batches=2,
            e2e_model_kwargs={"stem_width": 16, "channels": [16, 32, 64, 128]},
            audio_batch=64, audio_batches=2, tabular_batch=128, loader_steps=4, loader_rounds=1, loader_jpegs=16,
        )
    return Sizes(
        repeats=5, ema_repeats=20, views=[(32, 256, 2), (96, 64, 2), (224, 32, 2)], multi_crop=(16, 2),
        step_batch={"resnet18": 64, "resnet50": 8}, step_repeats={"resnet18": 5, "resnet50": 3},
        step_compile=("resnet18", "resnet50"), e2e_images=2048, e2e_batch=128, e2e_epochs=2, e2e_warmup_batches=2,
        audio_batch=128, audio_batches=4, tabular_batch=512, loader_steps=5, loader_rounds=2, loader_jpegs=64,
    )


@dataclass
class Context:
    """What every section needs: the device, the sizes and the DataLoader worker count."""

    device: torch.device
    sizes: Sizes
    workers: int
    profile_dir: Path | None = None  # where the views and loader sections write profiler tables (``--profile``)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# ----- measurement ----------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or the process's peak RSS (Linux ``/proc/self/clear_refs``)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: the peak below is the process's lifetime peak


def _proc_status_mb(field: str) -> float | None:
    """A ``kB`` field of Linux's ``/proc/self/status`` in MiB (``VmRSS``: now, ``VmHWM``: peak), else ``None``."""
    try:
        with open("/proc/self/status") as f:
            return int(re.search(rf"{field}:\s+(\d+) kB", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def memory_mb(device: torch.device) -> float:
    """MiB in use now: CUDA memory allocated by tensors, or the process's resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _proc_status_mb("VmRSS") or 0.0


def peak_memory_mb(device: torch.device) -> float:
    """MiB: peak CUDA memory allocated by tensors, or the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class Timing:
    """Seconds of the warm-up and timed calls of one function, and the peak memory over the timed calls: absolute,
    and above what was in use when a call started (what the call itself needs: activations, temporaries)."""

    warmup_s: list[float]
    times_s: list[float]
    peak_mb: float = 0.0
    peak_increase_mb: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.times_s)


def compare(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Time functions side by side: ``warmup`` untimed calls of each, then ``repeats`` rounds calling each in turn."""
    timings = {name: Timing([], []) for name in fns}

    def call(fn: Callable[[], object]) -> float:
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - start

    for name, fn in fns.items():
        timings[name].warmup_s = [call(fn) for _ in range(warmup)]
    for _ in range(repeats):
        for name, fn in fns.items():
            reset_peak_memory(device)
            resting = memory_mb(device)
            timings[name].times_s.append(call(fn))
            peak = peak_memory_mb(device)
            timings[name].peak_mb = max(timings[name].peak_mb, peak)
            timings[name].peak_increase_mb = max(timings[name].peak_increase_mb, peak - resting)
    return timings


def training_flops(fn: Callable[[], torch.Tensor]) -> int:
    """FLOPs (matmuls, convolutions, attention; 2 per multiply-add) of ``fn()`` and the backward of its loss."""
    with FlopCounterMode(display=False) as counter:
        fn().backward()
    return counter.get_total_flops()


def bf16_peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak in FLOP/s when it is in :data:`BF16_DENSE_PEAK_TFLOPS`, else ``None``."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in BF16_DENSE_PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX512-BF16 or AMX); without them bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def row(section: str, setting: str, unit: str, ours: float, reference: float | None, *,
        lower_is_better: bool = False, config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One result. ``ratio`` is ours' speed over the reference's (> 1: ours is faster), whatever the unit."""
    ratio = None
    if reference:
        ratio = reference / ours if lower_is_better else ours / reference
    return {"section": section, "setting": setting, "unit": unit, "ours": ours, "reference": reference,
            "ratio": ratio, "config": config or {}, **extra}


_printed_reasons: set[str] = set()


def skipped(section: str, setting: str, reason: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A row that was not measured, with why (printed now and kept in the JSON)."""
    if reason not in _printed_reasons:
        _printed_reasons.add(reason)
        console.print(f"[yellow]skipping[/] {section} rows: {reason}")
    return {"section": section, "setting": setting, "skipped": reason, "config": config or {}}


# ----- shared data ----------------------------------------------------------------------------------------------
class UInt8Images(Dataset):
    """Images ``(3, H, W)`` uint8 with label -1 (unlabeled), as a decoding dataset hands them to the loader.

    With ``transform``, an item is ``(view1, view2, -1)``: the per-sample CPU augmentation of the reference.
    """

    def __init__(self, images: torch.Tensor, transform: Callable | None = None) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:
        if self.transform is None:
            return self.images[i], -1
        return *self.transform(self.images[i]), -1


def random_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` random uint8 images ``(3, size, size)``."""
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def source_size(size: int) -> int:
    """Stored image side for crops of ``size``: CIFAR is stored at 32 px, ImageNet-style data pre-resized to 256."""
    return 32 if size <= 32 else 256


def loader(dataset: Dataset, batch: int, ctx: Context, shuffle: bool = False) -> DataLoader:
    """A DataLoader as the DataModule builds it: ``ctx.workers`` persistent workers, pinned memory on CUDA."""
    return DataLoader(dataset, batch_size=batch, shuffle=shuffle, num_workers=ctx.workers, drop_last=True,
                      persistent_workers=ctx.workers > 0, pin_memory=ctx.cuda)


class TwoViews:
    """Apply two per-sample transforms to one sample: ``x -> (first(x), second(x))``."""

    def __init__(self, first: Callable, second: Callable) -> None:
        self.first, self.second = first, second

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first(x), self.second(x)


def torchvision_views(size: int) -> TwoViews:
    """The recipe of :class:`SmallImageViews` (32 px) / :class:`BYOLImageViews` (larger) as per-sample torchvision
    v2 transforms on uint8 images, the common CPU practice: blur 1.0 / 0.1 (none at 32 px), solarize 0.0 / 0.2."""
    small = size <= 32
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if small else (IMAGENET_MEAN, IMAGENET_STD)
    blur = (0.0, 0.0) if small else (1.0, 0.1)

    def view(blur_p: float, solarize_p: float) -> v2.Compose:
        ops: list[Callable] = [
            v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
        ]
        if blur_p > 0:
            ops.append(v2.RandomApply([v2.GaussianBlur(default_blur_kernel_size(size), (0.1, 2.0))], p=blur_p))
        if solarize_p > 0:
            ops.append(v2.RandomSolarize(128, p=solarize_p))
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        return v2.Compose(ops)

    return TwoViews(view(blur[0], 0.0), view(blur[1], 0.2))


def workers_text(workers: int) -> str:
    return "the main process" if workers == 0 else f"{workers} worker" + ("s" if workers > 1 else "")


def image_views(size: int) -> BYOLImageViews:
    """Our on-device views for crops of ``size`` px."""
    return SmallImageViews() if size <= 32 else BYOLImageViews(size)


@torch.no_grad()
def loop_ema(target: nn.Module, online: nn.Module, tau: float) -> None:
    """The common reference EMA: one Python iteration (and a few kernel launches) per parameter and buffer."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(tau).add_(o.detach(), alpha=1 - tau)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


# ----- (a) EMA update -------------------------------------------------------------------------------------------
def bench_ema(ctx: Context) -> list[dict]:
    """Time per target update, fused multi-tensor lerp vs per-parameter loop, for BYOL's backbone + projector."""
    rows = []
    for name in ("resnet18", "resnet50"):
        model = BYOL(TimmBackbone(name), BYOLImageViews(224)).to(ctx.device)
        online, target = model.online, model.target.module
        timings = compare({"fused": partial(ema_update, target, online, 0.996),
                           "loop": partial(loop_ema, target, online, 0.996)}, ctx.device, ctx.sizes.ema_repeats, 3)
        params = sum(p.numel() for p in online.parameters())
        tensors = len(list(online.parameters())) + len(list(online.buffers()))
        config = {"model": name, "parameters": params, "tensors": tensors, "repeats": ctx.sizes.ema_repeats,
                  "times_s": {k: t.times_s for k, t in timings.items()}}
        rows.append(row("ema", f"{name} + projector ({params / 1e6:.1f}M params, {tensors} tensors)", "ms/update",
                        1e3 * timings["fused"].median, 1e3 * timings["loop"].median, lower_is_better=True,
                        config=config))
        del model
    return rows


# ----- (a2) LARS -----------------------------------------------------------------------------------------------
def bench_lars(ctx: Context) -> list[dict]:
    """Time per optimizer step of timm's ``Lars`` with the CIFAR recipes' settings (momentum 0.9, weight decay 1e-5,
    trust coefficient 0.02, clipping) on BYOL's online network: the multi-tensor path (timm's default on CUDA)
    against the per-parameter loop (its default on a CPU). Gradients are fixed random tensors."""
    rows = []
    for name in ("resnet18", "resnet50"):
        online = BYOL(TimmBackbone(name), BYOLImageViews(224)).online.to(ctx.device)
        optimizers = {}
        for foreach in (True, False):
            params = [p.detach().clone().requires_grad_(True) for p in online.parameters()]
            g = torch.Generator(device=ctx.device).manual_seed(0)
            for p in params:
                p.grad = torch.randn(p.shape, device=ctx.device, generator=g)
            optimizers[foreach] = Lars(params, lr=1.0, momentum=0.9, weight_decay=1e-5, trust_coeff=0.02,
                                       trust_clip=True, foreach=foreach)
        timings = compare({"foreach": optimizers[True].step, "loop": optimizers[False].step}, ctx.device,
                          ctx.sizes.ema_repeats, 3)
        tensors = len(optimizers[True].param_groups[0]["params"])
        config = {"model": name, "tensors": tensors, "repeats": ctx.sizes.ema_repeats,
                  "times_s": {k: t.times_s for k, t in timings.items()}}
        rows.append(row("lars", f"{name} + projector ({tensors} tensors), multi-tensor vs per parameter", "ms/step",
                        1e3 * timings["foreach"].median, 1e3 * timings["loop"].median, lower_is_better=True,
                        config=config))
        del online, optimizers
    return rows


# ----- (b) image views ------------------------------------------------------------------------------------------
def lightly_views(size: int) -> Callable | None:
    """lightly's ``BYOLTransform`` with the same recipe (PIL images in, two tensors out); ``None`` without lightly
    (the optional ``bench`` extra)."""
    try:
        from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform
    except ImportError:
        return None
    small = size <= 32
    normalize = {"mean": list(CIFAR10_MEAN if small else IMAGENET_MEAN), "std": list(CIFAR10_STD if small else IMAGENET_STD)}
    blur = (0.0, 0.0) if small else (1.0, 0.1)
    return BYOLTransform(BYOLView1Transform(size, gaussian_blur=blur[0], normalize=normalize),
                         BYOLView2Transform(size, gaussian_blur=blur[1], normalize=normalize))


class PILImages(Dataset):
    """The images as PIL images (decoded once, as an image folder's decoder hands them over), through ``transform``."""

    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        self.images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:
        return *self.transform(self.images[i]), -1


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (``None``: unchanged)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_views(ctx: Context) -> list[dict]:
    """Images/s of both views: ours batched on the device vs two per-sample pipelines of the same recipe,
    torchvision v2 on uint8 tensors and lightly's ``BYOLTransform`` on PIL images. On a CPU all three run in the
    main process on one thread (the per-thread cost); on a GPU ours runs there and the references in workers."""
    rows = []
    workers = ctx.workers if ctx.cuda else 0
    for size, batch, batches in ctx.sizes.views:
        images = random_images(batch * batches, source_size(size))
        views = image_views(size).to(ctx.device)
        data = {"ours": UInt8Images(images), "torchvision": UInt8Images(images, torchvision_views(size))}
        lightly = lightly_views(size)
        if lightly is not None:
            data["lightly"] = PILImages(images, lightly)
        loaders = {name: DataLoader(d, batch_size=batch, num_workers=workers, drop_last=True,
                                    persistent_workers=workers > 0, pin_memory=ctx.cuda) for name, d in data.items()}

        def ours(views: nn.Module = views, loader: DataLoader = loaders["ours"]) -> None:
            for x, _ in loader:
                views(x.to(ctx.device, non_blocking=True))

        def reference(loader: DataLoader) -> Callable[[], None]:
            def run() -> None:
                for v1, v2_, _ in loader:
                    v1.to(ctx.device, non_blocking=True), v2_.to(ctx.device, non_blocking=True)
            return run

        fns = {"ours": ours, **{name: reference(loader) for name, loader in loaders.items() if name != "ours"}}
        with threads(None if ctx.cuda else 1):
            timings = compare(fns, ctx.device, ctx.sizes.repeats)
        n = batch * batches
        where = f"references in {workers_text(workers)}" if ctx.cuda else "one thread each"
        for name in ("torchvision", "lightly"):
            config = {"size": size, "source_size": source_size(size), "batch": batch, "batches": batches,
                      "workers": workers, "threads": None if ctx.cuda else 1,
                      "times_s": {k: timings[k].times_s for k in ("ours", name) if k in timings}}
            setting = f"{size} px from {source_size(size)} px, batch {batch}, vs {name}, {where}"
            if name not in timings:
                rows.append(skipped("views", setting, "lightly is not installed (pip install -e .[bench])", config))
                continue
            rows.append(row("views", setting, "img/s", n / timings["ours"].median, n / timings[name].median,
                            config=config))
        if ctx.profile_dir is not None:
            with threads(None if ctx.cuda else 1):
                profile_views(views, images[:batch].to(ctx.device), ctx.device,
                              ctx.profile_dir / f"profile_views_{size}px.txt")
        del loaders  # stops the persistent workers
    return rows + multi_crop_rows(ctx)


def lightly_multi_crops() -> Callable | None:
    """lightly's ``DINOTransform`` with DINO's 8 local crops (its default is 6; the rest of its defaults are the
    recipe of :class:`DINOImageViews`); ``None`` without lightly."""
    try:
        from lightly.transforms.dino_transform import DINOTransform
    except ImportError:
        return None
    return DINOTransform(n_local_views=8)


class PILMultiCrops(PILImages):
    """PIL images through lightly's ``DINOTransform``: an item is the list of its crops."""

    def __getitem__(self, i: int) -> tuple:
        return self.transform(self.images[i]), -1


def multi_crop_rows(ctx: Context) -> list[dict]:
    """Images/s of DINO's multi-crop views (2 x 224 px + 8 x 96 px from 256 px images): ``DINOImageViews`` on
    the device vs lightly's ``DINOTransform`` per sample (PIL images, :func:`lightly_multi_crops`)."""
    batch, batches = ctx.sizes.multi_crop
    workers = ctx.workers if ctx.cuda else 0
    where = f"lightly in {workers_text(workers)}" if ctx.cuda else "one thread each"
    setting = f"DINO multi-crop, 2 x 224 + 8 x 96 px from 256 px, batch {batch}, vs lightly, {where}"
    config = {"batch": batch, "batches": batches, "workers": workers, "threads": None if ctx.cuda else 1}
    transform = lightly_multi_crops()
    if transform is None:
        return [skipped("views", setting, "lightly is not installed (pip install -e .[bench])", config)]
    images = random_images(batch * batches, 256)
    views = DINOImageViews().to(ctx.device)
    data = {"ours": UInt8Images(images), "lightly": PILMultiCrops(images, transform)}
    loaders = {name: DataLoader(d, batch_size=batch, num_workers=workers, drop_last=True,
                                persistent_workers=workers > 0, pin_memory=ctx.cuda) for name, d in data.items()}

    def ours() -> None:
        for x, _ in loaders["ours"]:
            views(x.to(ctx.device, non_blocking=True))

    def lightly() -> None:
        for crops, _ in loaders["lightly"]:
            for c in crops:
                c.to(ctx.device, non_blocking=True)

    with threads(None if ctx.cuda else 1):
        timings = compare({"ours": ours, "lightly": lightly}, ctx.device, ctx.sizes.repeats)
    config["times_s"] = {k: t.times_s for k, t in timings.items()}
    n = batch * batches
    del loaders
    return [row("views", setting, "img/s", n / timings["ours"].median, n / timings["lightly"].median, config=config)]


def profile_views(views: nn.Module, images: torch.Tensor, device: torch.device, path: Path) -> None:
    """Write torch.profiler's table of one call of ``views`` on a batch to ``path``: where the time that remains
    goes, ops by self time on the device (CUDA) or the host."""
    views(images)  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                           if device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities, acc_events=True) as prof:
        views(images)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.write_text(f"views of {len(images)} images, ops sorted by {key}\n"
                    f"{prof.key_averages().table(sort_by=key, row_limit=25)}\n")
    console.print(f"  profile written to {path}")


# ----- (c) training step ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepSetting:
    """One training-step variant."""

    precision: str  # "fp32" or "bf16" (autocast, as Lightning's bf16-mixed)
    channels_last: bool = False
    compile: bool = False

    def __str__(self) -> str:
        layout = ", channels_last" if self.channels_last else ""
        return self.precision + layout + (", compiled" if self.compile else "")


STEP_MODELS = {"resnet18": ("ResNet-18 CIFAR stem", True, 32), "resnet50": ("ResNet-50", False, 224)}
STEP_SETTINGS = [StepSetting("fp32"), StepSetting("fp32", True), StepSetting("bf16"), StepSetting("bf16", True),
                 StepSetting("bf16", True, True), StepSetting("fp32", False, True)]


def step_settings(ctx: Context, model: str) -> tuple[list[StepSetting], dict[StepSetting, str]]:
    """The variants of ``model`` to measure on this device, and the skipped ones with why."""
    run, skip = [], {}
    for s in STEP_SETTINGS:
        if ctx.cuda and s == StepSetting("fp32", False, True):
            continue  # on a GPU the compiled row is the fast one: bf16 + channels_last
        if not ctx.cuda and s.precision == "bf16" and not cpu_has_native_bf16():
            skip[s] = ("no native bf16 on this CPU: without AVX512-BF16 or AMX autocast emulates it, an order of "
                       "magnitude slower than fp32 in a trial, which says nothing about GPUs")
        elif s.compile and model not in ctx.sizes.step_compile:
            skip[s] = "compile too slow here: it takes minutes on a few CPU cores; --no-quick measures it"
        else:
            run.append(s)
    return run, skip


def autocast_dtype(setting: StepSetting) -> torch.dtype | None:
    return torch.bfloat16 if setting.precision == "bf16" else None


def build_byol(name: str, device: torch.device, setting: StepSetting) -> BYOL:
    """The BYOL method of the step benchmark, on ``device``, with the setting's memory format and compilation."""
    _, cifar_stem, size = STEP_MODELS[name]
    torch.manual_seed(0)
    model = BYOL(TimmBackbone(name, cifar_stem=cifar_stem), image_views(size), channels_last=setting.channels_last)
    model.to(device)
    if setting.compile:  # what compile=True does at the start of fit
        model.online.compile()
        model.target.compile()
    return model


def byol_step(
    model: BYOL, optimizer: torch.optim.Optimizer, dtype: torch.dtype | None
) -> Callable[[torch.Tensor], None]:
    """The method's hot path as a function of a uint8 batch ``(B, 3, H, W)`` on the device: views on the device,
    training_step, backward, optimizer step, EMA."""

    def step(images: torch.Tensor) -> None:
        labels = torch.full((len(images),), -1, device=images.device)
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            loss = model.training_step(model.training_views((images, labels)), 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(model.target, model.online, 0.99)

    return step


def first_call_s(step: Callable[[], None], device: torch.device) -> float | None:
    """Seconds of the first call of ``step`` (compilation, autotuning), or ``None`` if the device ran out of memory."""
    try:
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        return time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        return None


def step_flops_per_image(model: BYOL, images: torch.Tensor) -> float:
    """Training FLOPs per image of one step: online forward + backward of both views and the target's forwards."""
    labels = torch.full((len(images),), -1, device=images.device)
    batch = model.training_views((images, labels))
    flops = training_flops(lambda: model.training_step(batch, 0))
    model.zero_grad(set_to_none=True)
    return flops / len(images)


def bench_step(ctx: Context) -> list[dict]:
    """BYOL images/s per setting, side by side for each model; ratios are over the fp32 eager row."""
    rows = []
    peak = bf16_peak_flops(ctx.device)
    for name, (label, _, size) in STEP_MODELS.items():
        run, skip = step_settings(ctx, name)
        batch = ctx.sizes.step_batch[name]
        images = random_images(batch, source_size(size)).to(ctx.device)
        steps, models, first_s = {}, {}, {}
        for s in run:
            models[s] = build_byol(name, ctx.device, s)
            opt = torch.optim.SGD(models[s].parameters(), lr=0.01, momentum=0.9)
            steps[s] = partial(byol_step(models[s], opt, autocast_dtype(s)), images)
            first_s[s] = first_call_s(steps[s], ctx.device)
            if first_s[s] is None:
                skip[s] = "out of memory: the batch does not fit on this device in this setting"
                del steps[s], models[s], opt
                torch.cuda.empty_cache()
        # the first call above was a warm-up; on a GPU one more (a compiled step may recompile once)
        timings = compare(steps, ctx.device, ctx.sizes.step_repeats[name], warmup=int(ctx.cuda)) if steps else {}
        base_setting = next(iter(timings), None)  # fp32 eager when it fits: the reference of the ratios
        if base_setting is not None:
            flops = step_flops_per_image(models[base_setting], images[: min(batch, 8)])
            base = batch / timings[base_setting].median
        for s in STEP_SETTINGS:
            config = {"model": name, "image_size": size, "source_size": source_size(size), "batch": batch,
                      **asdict(s)}
            setting = f"{label}, {size} px, batch {batch}, {s}"
            if s in skip:
                rows.append(skipped("step", setting, skip[s], config))
            if s not in timings:
                continue
            t = timings[s]
            img_s = batch / t.median
            config.update(times_s=t.times_s, first_call_s=first_s[s], warmup_s=t.warmup_s,
                          peak_increase_mb=t.peak_increase_mb)
            if s.compile:
                setting += f" (first call {first_s[s]:.0f} s)"
            achieved = flops * img_s
            rows.append(row("step", setting, "img/s", img_s, None if s == base_setting else base, config=config,
                            peak_mb=t.peak_mb, gflop_per_img=flops / 1e9, achieved_tflops=achieved / 1e12,
                            peak_fraction=achieved / peak if peak and s.precision == "bf16" else None))
        del steps, models
    return rows


# ----- (d) end to end -------------------------------------------------------------------------------------------
class EpochTimer(L.Callback):
    """Wall time of each training epoch (synchronised with the device)."""

    def __init__(self) -> None:
        self.times_s: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(pl_module.device)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(pl_module.device)
        self.times_s.append(time.perf_counter() - self._start)


def e2e_model(ctx: Context) -> BYOL:
    """The end-to-end model: ResNet-18 CIFAR stem (narrower in quick CPU runs), SGD, bf16 + channels_last on CUDA."""
    torch.manual_seed(0)
    backbone = TimmBackbone("resnet18", cifar_stem=True, model_kwargs=ctx.sizes.e2e_model_kwargs)
    return BYOL(backbone, SmallImageViews(), optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9),
                warmup_epochs=0, channels_last=ctx.cuda)


def e2e_trainer(ctx: Context, epochs: int, callbacks: list[L.Callback], limit_batches: int | None = None) -> L.Trainer:
    """A quiet 1-device Trainer: bf16-mixed on CUDA, fp32 on CPU; no logger, checkpoints or validation."""
    return L.Trainer(
        accelerator="gpu" if ctx.cuda else "cpu", devices=[ctx.device.index or 0] if ctx.cuda else 1,
        precision="bf16-mixed" if ctx.cuda else "32-true",
        max_epochs=epochs, limit_train_batches=limit_batches, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks,
        default_root_dir=REPO / "checkpoints" / "runs" / "bench",
    )


def ours_epochs(ctx: Context, images: torch.Tensor) -> list[float]:
    """Epoch times of byol.BYOL in a Lightning Trainer: uint8 batches, kornia views on the device, fused EMA."""
    model = e2e_model(ctx)
    data = DataModule(UInt8Images(images), batch_size=ctx.sizes.e2e_batch, num_workers=ctx.workers)
    e2e_trainer(ctx, 1, [], limit_batches=ctx.sizes.e2e_warmup_batches).fit(model, data)  # warm-up
    timer = EpochTimer()
    e2e_trainer(ctx, ctx.sizes.e2e_epochs, [timer]).fit(model, data)
    return timer.times_s


def reference_epochs(ctx: Context, images: torch.Tensor) -> list[float]:
    """Epoch times of a plain loop: torchvision views per sample in workers, the same networks, a per-parameter EMA."""
    model = e2e_model(ctx).to(ctx.device)
    online, predictor, target = model.online, model.predictor, model.target
    opt = torch.optim.SGD([*online.parameters(), *predictor.parameters()], lr=0.05, momentum=0.9)
    dataset = UInt8Images(images, torchvision_views(32))
    memory_format = torch.channels_last if ctx.cuda else torch.contiguous_format
    dtype = torch.bfloat16 if ctx.cuda else None

    def train(data: DataLoader, max_batches: int | None) -> None:
        for i, (v1, v2_, _) in enumerate(data):
            if max_batches is not None and i == max_batches:
                break
            v1, v2_ = (v.to(ctx.device, non_blocking=True, memory_format=memory_format) for v in (v1, v2_))
            with torch.autocast(ctx.device.type, dtype=dtype, enabled=dtype is not None):
                _, z1 = online(v1)
                _, z2 = online(v2_)
                with torch.no_grad():
                    _, t1 = target(v1)
                    _, t2 = target(v2_)
                loss = symmetric_byol_loss(predictor(z1), predictor(z2), t1, t2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loop_ema(target, online, 0.996)
        sync(ctx.device)

    train(loader(dataset, ctx.sizes.e2e_batch, ctx, shuffle=True), ctx.sizes.e2e_warmup_batches)
    data = loader(dataset, ctx.sizes.e2e_batch, ctx, shuffle=True)  # new workers, as ours' second Trainer has
    times = []
    for _ in range(ctx.sizes.e2e_epochs):
        start = time.perf_counter()
        train(data, None)
        times.append(time.perf_counter() - start)
    return times


def bench_e2e(ctx: Context) -> list[dict]:
    """Seconds per epoch on CIFAR-10-sized data, ours (Lightning) vs the plain reference loop."""
    s = ctx.sizes
    images = random_images(s.e2e_images, 32)
    ours, reference = ours_epochs(ctx, images), reference_epochs(ctx, images)
    width = "narrow " if s.e2e_model_kwargs else ""
    config = {"images": s.e2e_images, "batch": s.e2e_batch, "epochs": s.e2e_epochs, "workers": ctx.workers,
              "warmup_batches": s.e2e_warmup_batches, "model_kwargs": s.e2e_model_kwargs,
              "precision": "bf16-mixed" if ctx.cuda else "32-true", "channels_last": ctx.cuda,
              "times_s": {"ours": ours, "reference": reference}}
    t_ours, t_ref = statistics.median(ours), statistics.median(reference)
    return [row("e2e", f"{width}ResNet-18 CIFAR stem, {s.e2e_images:,} images, batch {s.e2e_batch}", "s/epoch",
                t_ours, t_ref, lower_is_better=True, config=config, ours_img_s=s.e2e_images / t_ours,
                reference_img_s=s.e2e_images / t_ref)]


# ----- (e) data loader attached vs pre-loaded -------------------------------------------------------------------
PREFETCH_FACTOR = 2  # torch's DataLoader default, which the DataModule keeps


class Repeated(Dataset):
    """``dataset`` read ``length`` samples long, cycling: a long epoch over a few distinct files."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple:
        return self.dataset[i % len(self.dataset)]


def write_photo_jpegs(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` photo-like 500x375 JPEGs (quality 90, ImageNet's most common shape): smooth colour fields with mild
    noise, whose decoding costs about what a photograph's does (pure noise would compress worse and decode slower)."""
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        low = torch.rand(1, 3, 12, 16, generator=g)
        image = torch.nn.functional.interpolate(low, size=(375, 500), mode="bicubic", align_corners=False)[0]
        image = (image + 0.04 * torch.randn(image.shape, generator=g)).clamp(0, 1)
        Image.fromarray((255 * image).byte().permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.jpg", quality=90)


class BatchStream:
    """Batches of a DataLoader on the device, epoch after epoch, adding up the host's wait for each (the loader's
    ``next`` and the copy's launch); on a GPU the copy is asynchronous from pinned memory."""

    def __init__(self, data: DataLoader, device: torch.device) -> None:
        self.data, self.device = data, device
        self.iterator = iter(data)
        self.wait_s = 0.0

    def reset_wait(self) -> None:
        self.wait_s = 0.0

    def next(self) -> torch.Tensor:
        start = time.perf_counter()
        with torch.profiler.record_function("wait_for_data"):
            try:
                images, _ = next(self.iterator)
            except StopIteration:
                self.iterator = iter(self.data)
                images, _ = next(self.iterator)
            images = images.to(self.device, non_blocking=True)
        self.wait_s += time.perf_counter() - start
        return images


class GPUBusy:
    """The share of time the GPU ran a kernel (NVML's utilisation, %), sampled every 20 ms on a thread between
    :meth:`start` and :meth:`stop`. ``read`` defaults to ``torch.cuda.utilization`` on CUDA devices (it needs the
    ``nvidia-ml-py`` package); without a reader, :attr:`mean` is ``None``."""

    def __init__(self, device: torch.device, read: Callable[[], float] | None = None) -> None:
        if read is None and device.type == "cuda":
            try:
                torch.cuda.utilization(device)
                read = partial(torch.cuda.utilization, device)
            except Exception:  # no NVML: nvidia-ml-py missing, or no driver access
                read = None
        self.read, self.samples = read, []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(float(self.read()))

    def start(self) -> None:
        if self.read is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def images_per_s(step: Callable[[torch.Tensor], None], batches: Callable[[], torch.Tensor], steps: int,
                 device: torch.device, busy: GPUBusy) -> float:
    """Images/s of ``steps`` steps on ``batches()``, timed from an idle device; ``busy`` samples the GPU's
    utilisation meanwhile."""
    sync(device)
    busy.start()
    start, count = time.perf_counter(), 0
    for _ in range(steps):
        images = batches()
        step(images)
        count += len(images)
    sync(device)
    elapsed = time.perf_counter() - start
    busy.stop()
    return count / elapsed


LOADER_DATA = {"resnet18": "uint8 arrays in memory (as CIFAR-10)",
               "resnet50": "JPEG files (500x375) decoded and resized to 256 px in workers"}


def loader_dataset(name: str, ctx: Context, length: int, folder: Path) -> Dataset:
    """The training data of the loader row of ``name``: in-memory 32 px uint8, or an :class:`ImageFolder` of JPEGs."""
    if name == "resnet18":
        return Repeated(UInt8Images(random_images(min(length, 50_000), 32)), length)
    write_photo_jpegs(folder, ctx.sizes.loader_jpegs)
    return Repeated(ImageFolder(folder, size=256), length)


def profile_step(step: Callable[[torch.Tensor], None], stream: BatchStream, steps: int, device: torch.device,
                 path: Path) -> None:
    """Write torch.profiler's table of ``steps`` steps fed by ``stream`` to ``path``: ops by self time on the
    device (CUDA) or the host; ``wait_for_data`` is the host's wait for the loader."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, acc_events=True) as prof:  # one cycle: nothing to clear
        for _ in range(steps):
            step(stream.next())
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    wait_us = sum(e.cpu_time_total for e in events if e.key == "wait_for_data")
    step_us = sum(e.self_cpu_time_total for e in events)
    path.write_text(f"{steps} steps; the host waited for data {wait_us / 1e3:,.1f} ms of {step_us / 1e3:,.1f} ms of "
                    f"host time\nops sorted by {key}\n{events.table(sort_by=key, row_limit=30)}\n")
    console.print(f"  profile written to {path}")


def bench_loader(ctx: Context) -> list[dict]:
    """Images/s of the same BYOL step fed by the training DataLoader vs on one batch already on the device, in
    alternating rounds; the ratio is the loader's efficiency (1: the step never waits for data)."""
    s, rows = ctx.sizes, []
    setting = StepSetting("bf16", True) if ctx.cuda else StepSetting("fp32", True)
    warm = ctx.workers * PREFETCH_FACTOR + 2  # more than the loader's queue holds: the steady state, not a full queue
    with tempfile.TemporaryDirectory() as tmp:
        for name, (label, _, size) in STEP_MODELS.items():
            batch = s.step_batch[name]
            length = 2 * s.loader_rounds * (warm + s.loader_steps) * batch  # one epoch covers every round
            data = DataModule(loader_dataset(name, ctx, length, Path(tmp) / name), batch_size=batch,
                              num_workers=ctx.workers).train_dataloader()
            stream = BatchStream(data, ctx.device)
            model = build_byol(name, ctx.device, setting)
            step = byol_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), autocast_dtype(setting))
            resident = stream.next()  # the pre-loaded batch
            attached, preloaded, waits = [], [], []
            busy = {"attached": GPUBusy(ctx.device), "preloaded": GPUBusy(ctx.device)}
            for _ in range(s.loader_rounds):
                for _ in range(2):
                    step(resident)
                preloaded.append(images_per_s(step, lambda: resident, s.loader_steps, ctx.device, busy["preloaded"]))
                for _ in range(warm):  # past the queue the loader filled meanwhile: its steady state
                    step(stream.next())
                stream.reset_wait()
                attached.append(images_per_s(step, stream.next, s.loader_steps, ctx.device, busy["attached"]))
                waits.append(stream.wait_s * attached[-1] / (s.loader_steps * batch))  # of the timed steps' time
            if ctx.profile_dir is not None:
                path = ctx.profile_dir / f"profile_loader_{name}.txt"
                profile_step(step, stream, min(s.loader_steps, 10), ctx.device, path)
            config = {"model": name, "image_size": size, "batch": batch, "workers": ctx.workers, **asdict(setting),
                      "data": LOADER_DATA[name], "warm_steps": warm, "steps": s.loader_steps, "rounds": s.loader_rounds,
                      "img_s": {"attached": attached, "preloaded": preloaded}, "host_wait_fraction": waits,
                      "gpu_busy_percent": {k: b.mean for k, b in busy.items()}}
            rows.append(row("loader", f"{label}, {size} px, batch {batch}, {setting}: {LOADER_DATA[name]}, "
                            f"{workers_text(ctx.workers)}", "img/s", statistics.median(attached),
                            statistics.median(preloaded), config=config))
            del stream, data, model, step
    return rows


# ----- (f) audio ------------------------------------------------------------------------------------------------
class Waveforms(Dataset):
    """Float waveform segments ``(L,)`` with label -1; with ``views``, an item is ``(view1, view2, -1)``."""

    def __init__(self, waves: torch.Tensor, views: BYOLAViews | None = None) -> None:
        self.waves, self.views = waves, views

    def __len__(self) -> int:
        return len(self.waves)

    @torch.no_grad()
    def __getitem__(self, i: int) -> tuple:
        if self.views is None:
            return self.waves[i], -1
        v1, v2_ = self.views(self.waves[i][None])  # the same pipeline on a batch of one, in the worker
        return v1[0], v2_[0], -1


def byola_views() -> BYOLAViews:
    """BYOL-A v2's views with fixed pre-normalisation statistics (what a run uses after computing them)."""
    return BYOLAViews(norm_stats=(-8.0, 4.0))


def bench_audio(ctx: Context) -> list[dict]:
    """Clips/s of both BYOL-A views: batched on the device vs per sample in DataLoader workers."""
    s = ctx.sizes
    views = byola_views().to(ctx.device)
    n = s.audio_batch * s.audio_batches
    waves = 0.1 * torch.randn(n, views.segment_samples, generator=torch.Generator().manual_seed(0))
    ours_loader = loader(Waveforms(waves), s.audio_batch, ctx)
    ref_loader = loader(Waveforms(waves, byola_views()), s.audio_batch, ctx)

    @torch.no_grad()
    def ours() -> None:
        for x, _ in ours_loader:
            views(x.to(ctx.device, non_blocking=True))

    def reference() -> None:
        for v1, v2_, _ in ref_loader:
            v1.to(ctx.device, non_blocking=True), v2_.to(ctx.device, non_blocking=True)

    timings = compare({"ours": ours, "reference": reference}, ctx.device, s.repeats)
    config = {"clip_samples": views.segment_samples, "sample_rate": 16000, "log_mel": list(views.shape),
              "batch": s.audio_batch, "batches": s.audio_batches, "workers": ctx.workers,
              "times_s": {k: t.times_s for k, t in timings.items()}}
    return [row("audio", f"BYOL-A v2 views of 0.95 s clips, batch {s.audio_batch}, reference in "
                f"{workers_text(ctx.workers)}", "clips/s", n / timings["ours"].median, n / timings["reference"].median,
                config=config)]


# ----- (g) tabular ----------------------------------------------------------------------------------------------
def build_tjepa(features: int, device: torch.device) -> TJEPA:
    """T-JEPA with the encoder and predictor of configs/tjepa_california.yaml on ``features`` numeric features."""
    torch.manual_seed(0)
    model = TJEPA(encoder=partial(TabularTransformer, dim=64, depth=4, heads=4, ffn_dim=128, num_reg_tokens=1),
                  predictor=partial(TJEPAPredictor, dim=32, depth=2, heads=2, ffn_dim=64), num_classes=None)
    model.build(features, [], {}, None)
    return model.to(device)


def tjepa_step(model: TJEPA, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[Callable, Callable]:
    """One pretraining step (masks, target tokens, prediction, loss, backward, AdamW, EMA) and its loss alone."""
    opt = torch.optim.AdamW([*model.online.parameters(), *model.predictor.parameters()], lr=1e-3, weight_decay=1e-5)

    def loss() -> torch.Tensor:
        x, masks, _ = model.training_views((inputs, labels))
        targets = gather_tokens(model.target_tokens(x).patches, masks.targets)
        return jepa_loss(model.predict_targets(x, masks), targets)

    def step() -> None:
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        ema_update(model.target, model.online, 0.996)

    return step, loss


def bench_tabular(ctx: Context) -> list[dict]:
    """T-JEPA rows/s for each feature count, side by side; ratios are over the first (fewest features) row."""
    s = ctx.sizes
    steps, flops = {}, {}
    for features in s.tabular_features:
        model = build_tjepa(features, ctx.device)
        g = torch.Generator().manual_seed(features)
        inputs = {"num": torch.randn(s.tabular_batch, features, generator=g).to(ctx.device),
                  "cat": torch.zeros(s.tabular_batch, 0, dtype=torch.long, device=ctx.device)}
        labels = torch.zeros(s.tabular_batch, device=ctx.device)
        steps[features], loss = tjepa_step(model, inputs, labels)
        torch.manual_seed(0)  # the same mask sizes for the FLOP count of every feature count
        flops[features] = training_flops(loss) / s.tabular_batch
        model.zero_grad(set_to_none=True)
    timings = compare(steps, ctx.device, s.repeats)
    base = s.tabular_batch / timings[s.tabular_features[0]].median
    rows = []
    for features, t in timings.items():
        rows_s = s.tabular_batch / t.median
        config = {"numeric_features": features, "batch": s.tabular_batch, "dim": 64, "depth": 4, "heads": 4,
                  "predictor_dim": 32, "times_s": t.times_s, "peak_increase_mb": t.peak_increase_mb}
        rows.append(row("tabular", f"T-JEPA, {features} numeric features, batch {s.tabular_batch}", "rows/s",
                        rows_s, base if features != s.tabular_features[0] else None, config=config,
                        peak_mb=t.peak_mb, gflop_per_img=flops[features] / 1e9,
                        achieved_tflops=flops[features] * rows_s / 1e12))
    return rows


BENCHES: dict[str, Callable[[Context], list[dict]]] = {
    "ema": bench_ema, "lars": bench_lars, "views": bench_views, "step": bench_step, "e2e": bench_e2e, "loader": bench_loader,
    "audio": bench_audio, "tabular": bench_tabular,
}


# ----- report ---------------------------------------------------------------------------------------------------
def machine(device: torch.device, threads: int) -> dict[str, Any]:
    """The machine, the device and the library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.+)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    peak = bf16_peak_flops(device)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({cpu})",
        "cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "torchvision": torchvision.__version__, "torchaudio": torchaudio.__version__, "timm": timm.__version__,
        "kornia": kornia.__version__, "lightning": L.__version__, "git_commit": commit,
        "cpu_bf16": cpu_has_native_bf16(), "bf16_peak_tflops": None if peak is None else peak / 1e12,
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"
    return f"{text} {unit}".strip()


COLUMNS = ("section", "setting", "ours", "reference", "ratio", "peak mem", "GFLOP/item", "achieved")


def table_cells(r: dict[str, Any]) -> list[str]:
    """The printed cells of a row (see :data:`COLUMNS`)."""
    if "skipped" in r:
        return [r["section"], r["setting"], "skipped", r["skipped"].split(":")[0], "", "", "", ""]
    achieved = "" if r.get("achieved_tflops") is None else f"{1e3 * r['achieved_tflops']:,.1f} GFLOP/s"
    if r.get("peak_fraction") is not None:
        achieved += f" ({100 * r['peak_fraction']:.0f}% of peak)"
    busy = r["config"].get("gpu_busy_percent") or {}
    if busy.get("attached") is not None and busy.get("preloaded") is not None:
        achieved = f"GPU busy {busy['attached']:.0f}% vs {busy['preloaded']:.0f}%"
    return [r["section"], r["setting"], _fmt(r["ours"], r["unit"]), _fmt(r["reference"], r["unit"]),
            "" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            _memory_cell(r), _fmt(r.get("gflop_per_img")), achieved]


def _memory_cell(r: dict[str, Any]) -> str:
    """Peak memory and, in brackets, its increase over what was in use before the call."""
    if r.get("peak_mb") is None:
        return ""
    increase = r["config"].get("peak_increase_mb")
    return f"{r['peak_mb']:,.0f} MiB" + ("" if increase is None else f" (+{increase:,.0f})")


def print_table(rows: list[dict], meta: dict[str, Any]) -> None:
    table = Table(title=f"byol benchmarks on {meta['device']}, {meta['threads']} threads",
                  caption="ratio: ours' speed over the reference's (> 1: ours faster). step: reference = fp32 eager "
                          "row; tabular: reference = fewest features. peak mem: CUDA allocated, or process RSS on CPU, "
                          "(+ its increase during the call).")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("section", "setting") else "right", overflow="fold")
    section = None
    for r in rows:
        if section is not None and r["section"] != section:
            table.add_section()
        section = r["section"]
        table.add_row(*table_cells(r))
    console.print(table)


def markdown_table(rows: list[dict]) -> str:
    """The table as GitHub Markdown (what BENCHMARKS.md holds)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else the available cores less the 1-minute load average, at least 1.

    OpenMP threads that share their cores with other busy processes wait for each other at every barrier: on a busy
    2-core machine, 2 threads ran a ResNet training step 5-10x slower than 1 thread in a trial.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=None,
                        help="smaller sizes (default: on for CPU, off for CUDA)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", default=str(REPO / "checkpoints" / "runs" / "bench.json"), help="JSON results")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="torch CPU threads (default: OMP_NUM_THREADS, else the cores not busy with other work)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="DataLoader workers")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--reuse-host-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="keep freed host memory for reuse, as `byol` does (byol.core.host_memory); "
                             "--no-reuse-host-memory measures glibc's default")
    parser.add_argument("--profile", action="store_true",
                        help="views and loader sections: also write torch.profiler tables next to --out")
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    return args


def main() -> None:
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step runs without a Trainer here
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*on_after_batch_transfer.*")
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    args = parse_args()
    reused = reuse_freed_host_memory() if args.reuse_host_memory else False
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest convolutions
    quick = device.type == "cpu" if args.quick is None else args.quick
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = Context(device, sizes_for(device, quick), args.workers, out.parent if args.profile else None)
    meta = machine(device, torch.get_num_threads())
    meta.update(load_average_before=os.getloadavg(), host_memory_reused=reused)
    console.print(f"byol benchmarks on {meta['device']} ({meta['threads']} threads, {ctx.workers} workers, "
                  f"{'quick' if quick else 'full'} sizes), load average {meta['load_average_before'][0]:.2f}, "
                  f"freed host memory {'reused' if reused else 'returned (glibc default)'}")
    start, rows, seconds = time.perf_counter(), [], {}
    for name in (s for s in SECTIONS if s in args.only.split(",")):
        console.print(f"[bold]{name}[/] ...")
        t0 = time.perf_counter()
        rows += BENCHES[name](ctx)
        seconds[name] = time.perf_counter() - t0
        console.print(f"  {name} done in {seconds[name]:.0f} s")
    meta.update(load_average_after=os.getloadavg(), total_s=time.perf_counter() - start, section_s=seconds)
    print_table(rows, meta)
    if args.markdown:
        print(markdown_table(rows))
    out.write_text(json.dumps({"machine": meta, "quick": quick, "sizes": asdict(ctx.sizes), "args": vars(args),
                               "rows": rows}, indent=2))
    console.print(f"total {meta['total_s']:.0f} s, load average {meta['load_average_after'][0]:.2f}; written to {out}")


if __name__ == "__main__":
    main()
