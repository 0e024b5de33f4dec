"""Benchmarks, each comparison measured side by side in this one process (warm-up excluded, median of repeats).

    python scripts/bench.py [--device cuda] [--quick] [--out bench.json]     (what `make bench` runs)

Rows: the fused EMA update vs a per-parameter loop; the on-device kornia view pipeline vs torchvision
transforms applied per sample in DataLoader workers; BYOL training steps (fp32/bf16, channels_last).
Prints a table and writes JSON with the machine, versions and settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import kornia
import lightning
import timm
import torch
import torchvision
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from byol import BYOL, TimmBackbone
from byol.core import BYOLPredictionHead, BYOLProjectionHead, ema_update, make_target
from byol.views import BYOLImageViews, SmallImageViews


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----- 1. EMA update --------------------------------------------------------------------------------------------
@torch.no_grad()
def loop_ema(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
    """The common reference: one Python iteration (and kernel launch) per parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(tau).add_(o.detach(), alpha=1 - tau)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def bench_ema(device: torch.device, repeats: int) -> list[dict]:
    rows = []
    for name in ("resnet18", "resnet50"):
        backbone = TimmBackbone(name)
        online = torch.nn.Sequential(backbone, BYOLProjectionHead(backbone.num_features)).to(device)
        target = make_target(online)
        fused = timeit(lambda: ema_update(target, online, 0.996), device, repeats)
        loop = timeit(lambda: loop_ema(target, online, 0.996), device, repeats)
        params = sum(p.numel() for p in online.parameters()) / 1e6
        rows.append({"bench": "ema_update", "model": f"{name} + projector ({params:.1f}M params)",
                     "ours_ms": 1e3 * fused, "reference_ms": 1e3 * loop, "speedup": loop / fused})
    return rows


# ----- 2. image views -------------------------------------------------------------------------------------------
class RandomUint8Images(Dataset):
    """``n`` random uint8 images ``(3, size, size)``: what a decoding dataset hands to the loader."""

    def __init__(self, n: int, size: int, transform: Callable | None = None) -> None:
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        if self.transform is None:
            return x, 0
        return self.transform(x), self.transform(x), 0


def torchvision_byol_transform(size: int, blur: bool) -> v2.Compose:
    """The BYOL recipe as per-sample torchvision transforms (the common CPU practice)."""
    ops = [
        v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    if blur:
        ops.append(v2.RandomApply([v2.GaussianBlur(23 if size >= 224 else 3, (0.1, 2.0))], p=0.5))
    ops += [v2.RandomSolarize(128, p=0.1), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    return v2.Compose(ops)


def bench_views(device: torch.device, repeats: int, workers: int, quick: bool) -> list[dict]:
    rows = []
    for size, batch, n_batches in ((32, 512, 4), (224, 64, 2 if quick else 4)):
        views = (SmallImageViews() if size == 32 else BYOLImageViews(size)).to(device)
        data = RandomUint8Images(batch * n_batches, size + size // 8)

        def on_device() -> None:
            for x, _ in DataLoader(data, batch_size=batch, num_workers=0):
                views(x.to(device, non_blocking=True))

        cpu_data = RandomUint8Images(batch * n_batches, size + size // 8, torchvision_byol_transform(size, size >= 224))
        loader = DataLoader(cpu_data, batch_size=batch, num_workers=workers, persistent_workers=workers > 0)

        def per_sample_cpu() -> None:
            for v1, v2_, _ in loader:
                v1.to(device), v2_.to(device)

        ours = timeit(on_device, device, repeats, warmup=1)
        ref = timeit(per_sample_cpu, device, repeats, warmup=1)
        n = batch * n_batches
        rows.append({"bench": "image_views", "model": f"{size} px, batch {batch}, {workers} workers for the reference",
                     "ours_img_s": n / ours, "reference_img_s": n / ref, "speedup": ref / ours})
    return rows


# ----- 3. training step -----------------------------------------------------------------------------------------
def bench_step(device: torch.device, repeats: int, quick: bool) -> list[dict]:
    rows = []
    batch = 512 if device.type == "cuda" else 64
    settings = [("32-true", False), ("bf16-mixed", False), ("bf16-mixed", True)]
    for precision, channels_last in settings[:2] if quick else settings:
        model = BYOL(TimmBackbone("resnet18", cifar_stem=True), SmallImageViews(), channels_last=channels_last)
        model.to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
        labels = torch.full((batch,), -1, device=device)
        dtype = torch.bfloat16 if precision == "bf16-mixed" else None

        def step() -> None:
            """The method's own hot path: views on the device, training_step, optimizer step, EMA."""
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model.training_step(model.training_views((images, labels)), 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema_update(model.target, model.online, 0.99)

        seconds = timeit(step, device, repeats)
        rows.append({"bench": "byol_step", "model": f"ResNet-18 CIFAR stem, 32 px, batch {batch}, {precision}"
                     f"{', channels_last' if channels_last else ''}", "ours_img_s": batch / seconds})
    return rows


def main() -> None:
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step runs without a Trainer here
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="fewer rows and batches")
    parser.add_argument("--out", default="bench.json")
    args = parser.parse_args()
    device = torch.device(args.device)

    rows = bench_ema(device, args.repeats)
    rows += bench_views(device, max(args.repeats // 2, 2), args.workers, args.quick)
    rows += bench_step(device, args.repeats, args.quick)

    table = Table(title=f"byol benchmarks on {device} ({platform.processor() or platform.machine()}, "
                        f"{torch.get_num_threads()} threads)")
    for col in ("bench", "setting", "ours", "reference", "ours / reference"):
        table.add_column(col, justify="left" if col in ("bench", "setting") else "right")
    for r in rows:
        unit, ours, ref = ("ms", r["ours_ms"], r.get("reference_ms")) if "ours_ms" in r else \
            ("img/s", r["ours_img_s"], r.get("reference_img_s"))
        table.add_row(r["bench"], r["model"], f"{ours:,.1f} {unit}", "" if ref is None else f"{ref:,.1f} {unit}",
                      "" if "speedup" not in r else f"{r['speedup']:.2f}x")
    Console().print(table)
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "kornia": kornia.__version__,
        "timm": timm.__version__, "lightning": lightning.__version__, "args": vars(args),
    }
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
