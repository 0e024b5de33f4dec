"""Datasets decode fixture files written here in their native formats to exactly the known values."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from byol.data.image_datasets import CIFAR10, CIFAR100, MNIST, STL10, Digits, FashionMNIST, ImageFolder


def _assert_pickles_cheaply(ds, max_bytes: int) -> None:
    """The pickled dataset is small and its copy yields the same samples."""
    blob = pickle.dumps(ds)
    assert len(blob) < max_bytes
    copy = pickle.loads(blob)
    assert len(copy) == len(ds)
    for i in (0, len(ds) - 1):
        assert torch.equal(copy[i][0], ds[i][0])
        assert copy[i][1] == ds[i][1]


# ---------------------------------------------------------------- CIFAR


def _dump(path: Path, obj, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cifar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], dict[str, list[int]]]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"class{i}" for i in range(10)]
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in names], b"num_vis": 3072})
    data, labels = {"train": [], "test": []}, {"train": [], "test": []}
    for name, split in [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]:
        rows = _cifar_rows(rng, 2)
        batch_labels = rng.integers(0, 10, size=2).tolist()
        _dump(folder / name, {b"batch_label": name.encode(), b"data": rows, b"labels": batch_labels})
        data[split].append(rows)
        labels[split] += batch_labels
    return tmp_path, {k: np.concatenate(v) for k, v in data.items()}, labels


def test_cifar10_decodes_rows_as_planar_rgb(cifar10_root) -> None:
    root, data, labels = cifar10_root
    ds = CIFAR10(root, split="train")
    assert len(ds) == 10 and ds.num_classes == 10
    assert ds.classes == [f"class{i}" for i in range(10)]
    assert ds.targets == labels["train"]
    image, label = ds[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert isinstance(label, int) and label == labels["train"][3]
    row = data["train"][3]
    assert image[1, 2, 3].item() == row[1 * 1024 + 2 * 32 + 3]
    assert image[2, 31, 0].item() == row[2 * 1024 + 31 * 32]
    assert np.array_equal(image.numpy(), row.reshape(3, 32, 32))


def test_cifar10_accepts_batches_folder_and_test_split(cifar10_root) -> None:
    root, data, labels = cifar10_root
    ds = CIFAR10(root / "cifar-10-batches-py", split="test")
    assert len(ds) == 2 and ds.targets == labels["test"]
    assert np.array_equal(ds[-1][0].numpy(), data["test"][1].reshape(3, 32, 32))
    _assert_pickles_cheaply(ds, max_bytes=2000)


def test_cifar10_missing_batch_names_file(cifar10_root) -> None:
    root, _, _ = cifar10_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        CIFAR10(root)


def test_cifar_accepts_legacy_numpy_core_module_name(cifar10_root) -> None:
    root, data, _ = cifar10_root
    path = root / "cifar-10-batches-py" / "test_batch"
    blob = pickle.dumps({b"data": data["test"], b"labels": [1, 2]}, protocol=3)
    assert b"numpy._core.multiarray\n_reconstruct" in blob
    path.write_bytes(blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    ds = CIFAR10(root, split="test")
    assert ds.targets == [1, 2]
    assert np.array_equal(ds[0][0].numpy(), data["test"][0].reshape(3, 32, 32))


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def test_cifar_refuses_pickle_that_calls_os_system(cifar10_root, tmp_path: Path) -> None:
    root, _, _ = cifar10_root
    marker = tmp_path / "pwned.txt"
    path = root / "cifar-10-batches-py" / "test_batch"
    blob = pickle.dumps({b"data": _Exploit(marker), b"labels": [0]})
    assert b"system" in blob
    path.write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError, match="system") as info:
        CIFAR10(root, split="test")
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_cifar_refuses_exploit_in_meta_file(cifar10_root, tmp_path: Path) -> None:
    root, _, _ = cifar10_root
    marker = tmp_path / "pwned_meta.txt"
    _dump(root / "cifar-10-batches-py" / "batches.meta", {b"label_names": _Exploit(marker)})
    with pytest.raises(pickle.UnpicklingError, match="batches.meta"):
        CIFAR10(root)
    assert not marker.exists()


@pytest.fixture
def cifar100_root(tmp_path: Path) -> tuple[Path, np.ndarray, list[int], list[int]]:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _dump(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    rows = _cifar_rows(rng, 4)
    fine, coarse = [99, 0, 42, 7], [19, 0, 3, 1]
    _dump(folder / "train", {b"data": rows, b"fine_labels": fine, b"coarse_labels": coarse, b"filenames": [b"a"] * 4})
    _dump(folder / "test", {b"data": rows[:1], b"fine_labels": fine[:1], b"coarse_labels": coarse[:1]})
    return tmp_path, rows, fine, coarse


def test_cifar100_fine_and_coarse_labels(cifar100_root) -> None:
    root, rows, fine, coarse = cifar100_root
    ds = CIFAR100(root, split="train")
    assert ds.num_classes == 100 and ds.classes[99] == "fine99"
    assert ds.targets == fine and [ds[i][1] for i in range(4)] == fine
    image = ds[2][0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert image[0, 5, 6].item() == rows[2][5 * 32 + 6]
    assert np.array_equal(image.numpy(), rows[2].reshape(3, 32, 32))

    coarse_ds = CIFAR100(root / "cifar-100-python", split="train", label="coarse")
    assert coarse_ds.num_classes == 20 and coarse_ds.classes[3] == "coarse3"
    assert coarse_ds.targets == coarse
    assert len(CIFAR100(root, split="test")) == 1


def test_cifar100_missing_meta_names_file(cifar100_root) -> None:
    root, _, _, _ = cifar100_root
    (root / "cifar-100-python" / "meta").unlink()
    with pytest.raises(FileNotFoundError, match="meta"):
        CIFAR100(root)


# ---------------------------------------------------------------- STL-10


def _stl_file(images: np.ndarray) -> bytes:
    """Native STL-10 layout: each (3, H, W) image stored column-major, i.e. as (3, W, H)."""
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


@pytest.fixture
def stl_root(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    train = rng.integers(0, 256, size=(2, 3, 96, 96), dtype=np.uint8)
    train[0, 0, 0, 1], train[0, 0, 1, 0] = 11, 222
    unlabeled = rng.integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8)
    (folder / "train_X.bin").write_bytes(_stl_file(train))
    (folder / "train_y.bin").write_bytes(bytes([1, 10]))
    (folder / "unlabeled_X.bin").write_bytes(_stl_file(unlabeled))
    (folder / "class_names.txt").write_text("\n".join(f"name{i}" for i in range(10)) + "\n")
    return tmp_path, train, unlabeled


def test_stl10_column_major_images_and_labels(stl_root) -> None:
    root, train, _ = stl_root
    ds = STL10(root, split="train")
    assert len(ds) == 2 and ds.classes == [f"name{i}" for i in range(10)]
    assert ds.targets == [0, 9]
    image, label = ds[0]
    assert image.shape == (3, 96, 96) and image.dtype == torch.uint8 and label == 0
    assert image[0, 0, 1].item() == 11 and image[0, 1, 0].item() == 222
    assert np.array_equal(image.numpy(), train[0])
    assert ds[1][1] == 9 and np.array_equal(ds[1][0].numpy(), train[1])
    _assert_pickles_cheaply(ds, max_bytes=2000)


def test_stl10_unlabeled_splits(stl_root) -> None:
    root, train, unlabeled = stl_root
    ds = STL10(root / "stl10_binary", split="unlabeled")
    assert len(ds) == 3 and ds.classes == [] and ds.num_classes == 0
    assert [ds[i][1] for i in range(3)] == [-1, -1, -1]
    assert np.array_equal(ds[2][0].numpy(), unlabeled[2])

    both = STL10(root, split="train+unlabeled")
    assert len(both) == 5 and both.num_classes == 10
    assert both.targets == [0, 9, -1, -1, -1]
    assert np.array_equal(both[1][0].numpy(), train[1])
    assert np.array_equal(both[2][0].numpy(), unlabeled[0])
    assert np.array_equal(both[-1][0].numpy(), unlabeled[2])


def test_stl10_bad_file_size_names_file(stl_root) -> None:
    root, _, _ = stl_root
    (root / "stl10_binary" / "train_X.bin").write_bytes(bytes(3 * 96 * 96 + 5))
    with pytest.raises(ValueError, match="train_X.bin"):
        STL10(root)


# ---------------------------------------------------------------- MNIST idx


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    blob = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    images[2] = 77
    labels = np.array([5, 0, 9], dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, labels)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", 2051, images[:2])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", 2049, labels[:2])
    return tmp_path, images, labels


def test_mnist_reads_gzipped_and_plain_idx(mnist_root) -> None:
    root, images, labels = mnist_root
    ds = MNIST(root, split="train")
    assert len(ds) == 3 and ds.num_classes == 10 and ds.targets == [5, 0, 9]
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8 and label == 5
    assert np.array_equal(image[0].numpy(), images[0])
    test = MNIST(root, split="test")
    assert len(test) == 2 and np.array_equal(test[1][0][0].numpy(), images[1])
    _assert_pickles_cheaply(ds, max_bytes=2000)


def test_mnist_resize(mnist_root) -> None:
    root, _, _ = mnist_root
    ds = MNIST(root, size=16)
    image = ds[0][0]
    assert image.shape == (1, 16, 16) and image.dtype == torch.uint8
    assert torch.all(ds[2][0] == 77)


def test_fashion_mnist_class_names(mnist_root) -> None:
    root, images, _ = mnist_root
    ds = FashionMNIST(root)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert np.array_equal(ds[1][0][0].numpy(), images[1])


def test_mnist_wrong_magic_names_file(mnist_root) -> None:
    root, images, _ = mnist_root
    _write_idx(root / "train-images-idx3-ubyte.gz", 2049, images)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        MNIST(root)


def test_mnist_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        MNIST(tmp_path)


# ---------------------------------------------------------------- ImageFolder

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _green_centre(width: int, height: int) -> Image.Image:
    """Red image whose centre square (side = the shorter side), widened by the filter support, is green."""
    img = Image.new("RGB", (width, height), RED)
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    margin_x, margin_y = (2, 0) if width > height else (0, 2)
    img.paste(GREEN, (left - margin_x, top - margin_y, left + side + margin_x, top + side + margin_y))
    return img


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "b_dogs" / "nested").mkdir(parents=True)
    (root / "a_cats").mkdir()
    (root / "c_empty").mkdir()
    _green_centre(60, 20).save(root / "b_dogs" / "wide.png")
    _green_centre(20, 60).save(root / "b_dogs" / "nested" / "tall.PNG")
    _green_centre(40, 40).save(root / "a_cats" / "square.png")
    _green_centre(40, 80).save(root / "a_cats" / "z.jpg", quality=100)
    (root / "a_cats" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_labels_shapes_and_centre_crop(folder_root: Path) -> None:
    ds = ImageFolder(folder_root, size=10)
    assert ds.classes == ["a_cats", "b_dogs", "c_empty"] and ds.num_classes == 3
    assert [p.name for p in ds.paths] == ["square.png", "z.jpg", "tall.PNG", "wide.png"]
    assert ds.targets == [0, 0, 1, 1]
    green = torch.tensor(GREEN, dtype=torch.uint8).view(3, 1, 1)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 10, 10) and image.dtype == torch.uint8
        assert isinstance(label, int) and label == ds.targets[i]
        if ds.paths[i].suffix != ".jpg":
            assert torch.equal(image, green.expand(3, 10, 10))
    _assert_pickles_cheaply(ds, max_bytes=4000)


def test_image_folder_grayscale(folder_root: Path) -> None:
    ds = ImageFolder(folder_root, size=6, grayscale=True)
    image = ds[0][0]
    assert image.shape == (1, 6, 6) and image.dtype == torch.uint8
    reference = np.asarray(Image.new("RGB", (1, 1), GREEN).convert("L"))[0, 0]
    assert torch.all(image == int(reference))


def test_image_folder_unlabeled_flat_folder(tmp_path: Path) -> None:
    for i in range(3):
        _green_centre(30 + i, 20).save(tmp_path / f"{i}.png")
    ds = ImageFolder(tmp_path, size=8)
    assert ds.classes == [] and ds.num_classes == 0
    assert len(ds) == 3 and ds.targets == [-1, -1, -1]
    image, label = ds[1]
    assert image.shape == (3, 8, 8) and label == -1


def _add_corrupt_files(root: Path) -> tuple[Path, Path]:
    garbage = root / "a_cats" / "x.jpg"
    garbage.write_bytes(np.random.default_rng(4).integers(0, 256, 500, dtype=np.uint8).tobytes())
    truncated = root / "b_dogs" / "trunc.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return garbage, truncated


def test_image_folder_corrupt_raise(folder_root: Path) -> None:
    bad = _add_corrupt_files(folder_root)
    ds = ImageFolder(folder_root, size=8)
    assert len(ds) == 6 and ds.skipped == []
    for path in bad:
        with pytest.raises(RuntimeError, match=path.name):
            ds[ds.paths.index(path)]


def test_image_folder_corrupt_skip(folder_root: Path) -> None:
    bad = _add_corrupt_files(folder_root)
    with pytest.warns(UserWarning, match="skipped 2 image") as record:
        ds = ImageFolder(folder_root, size=8, on_corrupt="skip")
    assert "x.jpg" in str(record[0].message) and "trunc.png" in str(record[0].message)
    assert len(ds.skipped) == 2 and set(ds.skipped) == set(bad)
    assert len(ds) == 4 and ds.targets == [0, 0, 1, 1]
    assert all(ds[i][0].shape == (3, 8, 8) for i in range(len(ds)))


def test_image_folder_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="empty") as info:
        ImageFolder(tmp_path / "empty", size=8)
    assert ".png" in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolder(tmp_path / "missing", size=8)


def test_image_folder_scales_16_bit_grayscale(tmp_path: Path) -> None:
    wide = np.zeros((20, 20), dtype=np.uint16)
    wide[:, 10:] = 25700
    Image.fromarray(wide).save(tmp_path / "deep.png")
    image = ImageFolder(tmp_path, size=20, grayscale=True)[0][0]
    assert image[0, :, 0].tolist() == [0] * 20 and image[0, :, -1].tolist() == [100] * 20



def test_image_folder_decodes_large_jpegs_at_reduced_scale_with_the_same_result(tmp_path: Path, monkeypatch) -> None:
    """A 1200x900 JPEG for 128 px crops is decoded at 1/4 scale (300x225, both sides still >= 128); the sample
    matches a full-size decode resized the same way to within JPEG's own error."""
    import torchvision.transforms.v2.functional as TF
    from PIL import JpegImagePlugin

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:900, 0:1200] / 900.0
    photo = np.stack([128 + 100 * np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in (0.0, 1.0, 2.0)], axis=-1)
    photo += rng.normal(0, 3, photo.shape)
    Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(tmp_path / "big.jpg", quality=95)

    decoded_sizes = []
    load = JpegImagePlugin.JpegImageFile.load

    def recording_load(self):
        decoded_sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    image = ImageFolder(tmp_path, size=128)[0][0]
    assert set(decoded_sizes) == {(300, 225)}

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    with Image.open(tmp_path / "big.jpg") as full:
        reference = torch.from_numpy(np.asarray(full.convert("RGB")).copy()).permute(2, 0, 1)
    reference = TF.center_crop(TF.resize(reference, [128], antialias=True), [128, 128])
    difference = (image.float() - reference.float()).abs()
    assert image.shape == (3, 128, 128) and difference.mean() < 2.0 and difference.max() < 40


# ---------------------------------------------------------------- Digits


def test_digits_split_shapes_and_determinism() -> None:
    from sklearn.datasets import load_digits

    train, test = Digits("train", size=16), Digits("test", size=16)
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert not set(train.indices) & set(test.indices)
    assert set(train.targets) == set(test.targets) == set(range(10))
    assert train.targets == load_digits().target[train.indices].tolist()
    image, label = train[0]
    assert image.shape == (1, 16, 16) and image.dtype == torch.uint8 and isinstance(label, int)

    again = Digits("train", size=16)
    assert again.indices == train.indices
    assert all(torch.equal(again[i][0], train[i][0]) for i in range(0, len(train), 97))
    assert Digits("train", seed=1).indices != train.indices
    _assert_pickles_cheaply(train, max_bytes=40000)


def test_digits_scaling_matches_sklearn_at_native_size() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits().images
    ds = Digits("all", size=8)
    assert len(ds) == 1797
    stacked = torch.stack([ds[i][0] for i in range(len(ds))]).numpy()
    assert stacked.shape == (1797, 1, 8, 8)
    assert np.array_equal(stacked[:, 0], np.rint(raw * 255 / 16).astype(np.uint8))
    assert np.array_equal(stacked[:, 0] == 255, raw == 16)
    assert np.array_equal(stacked[:, 0] == 0, raw == 0)

