"""Writers of tiny data sets in their native on-disk formats, for tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_cifar10(root: Path, n: int = 8, seed: int = 0) -> Path:
    """``cifar-10-batches-py`` with five train batches and a test batch of ``n`` random images each."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def write_stl10(root: Path, n: int = 8, seed: int = 0) -> Path:
    """``stl10_binary`` with ``n`` images in each of train, test and unlabeled."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test", "unlabeled"):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        if split != "unlabeled":
            rng.integers(1, 11, n, dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return folder


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file (gzipped when ``path`` ends in .gz) of a uint8 array: magic 2049 for 1-D, 2051 for 3-D."""
    magic = {1: 2049, 3: 2051}[array.ndim]
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)


def write_mnist(root: Path, n: int = 8, seed: int = 0) -> Path:
    """MNIST-layout idx.gz files with ``n`` random 28x28 images per split."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return root


def write_image_folder(root: Path, classes: int = 2, per_class: int = 4, size: tuple[int, int] = (40, 30)) -> Path:
    """``root/class{i}/{j}.png`` random RGB images."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{j}.png")
    return root
