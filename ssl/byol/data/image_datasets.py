"""Map-style image datasets that decode to fixed-size ``uint8`` tensors.

Every dataset yields ``(image, label)`` with ``image`` a ``torch.uint8`` tensor
of shape ``(C, H, W)`` (the same ``H, W`` for all samples of a dataset) and
``label`` an ``int`` (``-1`` for unlabeled samples). Nothing here is random:
augmentation happens later, on the device.

All datasets are cheap to pickle (DataLoader workers under ``spawn``): folders
hold only file paths, and array-backed datasets drop their decoded arrays from
the pickled state and re-read them from disk on first access in the worker.
The CIFAR pickle batches are read with a restricted unpickler that only admits
the numpy globals needed to rebuild arrays.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, default_collate
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_STL10_SIDE = 96
_STL10_IMAGE_BYTES = 3 * _STL10_SIDE * _STL10_SIDE
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_EXIF_ORIENTATION = 0x0112


def _resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(C, H, W)`` uint8 image to ``(C, size, size)`` (bilinear, antialiased)."""
    if image.shape[-2:] == (size, size):
        return image
    return TF.resize(image, [size, size], antialias=True)


def _check_size(size: int) -> None:
    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")


def _fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(C, H, W)`` uint8 image so its shorter side is ``size`` (bilinear, antialiased), then
    centre-crop it to ``(C, size, size)``; on the image's device."""
    image = TF.resize(image, [size], antialias=True)
    return TF.center_crop(image, [size, size])


def _plain_jpeg(data: bytes, size: int) -> bool:
    """Whether torchvision's JPEG decoder gives, for this file, what :class:`ImageFolder`'s PIL path gives.

    True for a JPEG (not MPO) in mode ``L`` or ``RGB`` (not CMYK), without EXIF rotation, that PIL would not
    decode at reduced scale for ``size`` (``draft``: both sides at least twice ``size``). Reads the header only.
    """
    if not data.startswith(b"\xff\xd8"):
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG" or img.mode not in ("L", "RGB"):
                return False
            if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return False
            full = img.size
            img.draft(None, (size, size))
            return img.size == full
    except Exception:  # noqa: BLE001 (PIL says what is wrong with the file when the per-file path decodes it)
        return False


def decode_jpeg_batch(
    encoded: Sequence[torch.Tensor], size: int, device: torch.device | str = "cpu", grayscale: bool = False
) -> torch.Tensor:
    """Decode ``B`` JPEG files and fit each to ``size x size``: ``(B, C, size, size)`` uint8 on ``device``.

    ``encoded`` holds each file's bytes as a 1-D uint8 tensor on the host. On a CUDA device the files are
    decoded together by nvjpeg (``torchvision.io.decode_jpeg`` with a list; a batch it rejects is decoded on
    the CPU, with a warning), elsewhere one by one by libjpeg-turbo. Each image is then resized so its shorter
    side is ``size`` (bilinear, antialiased) and centre-cropped, on ``device``, as :class:`ImageFolder` does.
    ``C`` is 1 when ``grayscale`` (the luma of colour files), else 3 (grey files replicated). For files that
    pass :func:`_plain_jpeg`, the result is within JPEG decoder tolerance of ImageFolder's PIL path (on the
    CPU: the same libjpeg-turbo, so equal pixels for RGB).
    """
    mode = ImageReadMode.GRAY if grayscale else ImageReadMode.RGB
    files = list(encoded)
    try:
        images = decode_jpeg(files, mode=mode, device=device)
    except RuntimeError as e:
        if torch.device(device).type != "cuda":
            raise
        warnings.warn(f"the device's JPEG decoder failed on a batch ({e}); decoding it on the CPU", stacklevel=2)
        images = [image.to(device) for image in decode_jpeg(files, mode=mode)]
    return torch.stack([_fit_square(image, size) for image in images])


@dataclass(frozen=True)
class EncodedJpeg:
    """One sample's JPEG file, still encoded (``ImageFolder(decode="device")``); :func:`collate_images` batches
    these into :class:`EncodedImages`."""

    data: bytes
    size: int
    grayscale: bool
    path: str


class EncodedImages:
    """A batch of ``B`` images, the JPEGs among them still encoded, that ``.to(device)`` decodes on ``device``.

    Lightning moves a batch to the device by calling ``.to(device)`` on each element that has a ``to`` method,
    so the batch ``[EncodedImages, labels]`` of ``ImageFolder(decode="device")`` reaches the method's
    ``on_after_batch_transfer`` as ``[images, labels]``: ``(B, C, S, S)`` uint8 on the device, the JPEGs
    decoded there (:func:`decode_jpeg_batch`; nvjpeg on a GPU). The encoded bytes stay on the host (pinned by
    the DataLoader's ``pin_memory``), where the decoder reads them.

    Args:
        jpegs: the encoded files, concatenated: 1-D uint8 on the host.
        lengths: the byte length of each file in ``jpegs``, in order.
        paths: the path of each file in ``jpegs`` (named when one fails to decode).
        is_jpeg: per batch position, whether it holds the next file of ``jpegs`` or the next image of ``others``.
        others: ``(K, C, S, S)`` uint8 images already decoded (by PIL in the workers: the files the batched
            decoder does not take, see :func:`_plain_jpeg`).
        size: ``S``.
        grayscale: ``C = 1`` instead of 3.
    """

    def __init__(
        self,
        jpegs: torch.Tensor,
        lengths: list[int],
        paths: list[str],
        is_jpeg: list[bool],
        others: torch.Tensor,
        size: int,
        grayscale: bool,
    ) -> None:
        self.jpegs, self.lengths, self.paths, self.is_jpeg, self.others = jpegs, lengths, paths, is_jpeg, others
        self.size, self.grayscale = size, grayscale

    def __len__(self) -> int:
        return len(self.is_jpeg)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> torch.Tensor:
        """The batch decoded on ``device``: ``(B, C, S, S)`` uint8, in batch order."""
        others = iter(self.others.to(device, non_blocking=non_blocking))
        if not self.lengths:
            return torch.stack(list(others))
        files = list(self.jpegs.split(self.lengths))
        try:
            decoded = iter(decode_jpeg_batch(files, self.size, device, self.grayscale))
        except RuntimeError as e:
            failing = [path for path, file in zip(self.paths, files) if not _decodes_on_cpu(file)]
            raise RuntimeError(
                f"failed to decode image(s) {', '.join(failing) or '(none fails alone)'} on {device}: {e}; replace or "
                "remove them (ImageFolder's decode: cpu decodes on the CPU what PIL can)"
            ) from e
        return torch.stack([next(decoded) if jpeg else next(others) for jpeg in self.is_jpeg])

    def pin_memory(self) -> EncodedImages:
        """The DataLoader's ``pin_memory`` calls this: page-locked host memory, read faster by the device."""
        return EncodedImages(
            self.jpegs.pin_memory(), self.lengths, self.paths, self.is_jpeg, self.others.pin_memory(), self.size,
            self.grayscale,
        )


def _decodes_on_cpu(file: torch.Tensor) -> bool:
    try:
        decode_jpeg(file)
    except RuntimeError:
        return False
    return True


def collate_images(samples: list[Any]) -> Any:
    """``default_collate``, except for ``(image, label)`` samples some of whose images are :class:`EncodedJpeg`.

    Those become ``[EncodedImages, labels]`` (``(B,)`` int64 labels), which the transfer to the device turns
    into ``[(B, C, S, S) uint8, labels]``, as ``default_collate`` gives for decoded images. The collate of
    :class:`~byol.data.DataModule`'s loaders.
    """
    encoded = [s[0] for s in samples if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], EncodedJpeg)]
    if not encoded:
        return default_collate(samples)
    size, grayscale = encoded[0].size, encoded[0].grayscale
    others = [image for image, _ in samples if not isinstance(image, EncodedJpeg)]
    channels = 1 if grayscale else 3
    images = EncodedImages(
        jpegs=torch.from_numpy(np.frombuffer(b"".join(e.data for e in encoded), dtype=np.uint8).copy()),
        lengths=[len(e.data) for e in encoded],
        paths=[e.path for e in encoded],
        is_jpeg=[isinstance(image, EncodedJpeg) for image, _ in samples],
        others=torch.stack(others) if others else torch.empty((0, channels, size, size), dtype=torch.uint8),
        size=size,
        grayscale=grayscale,
    )
    return [images, torch.tensor([label for _, label in samples], dtype=torch.int64)]


class _ArrayImages(Dataset[tuple[torch.Tensor, int]]):
    """Base class for datasets whose decoded images live in ``uint8`` arrays.

    Subclasses set ``classes`` and ``targets`` and implement ``_load_parts``,
    which returns the image arrays, each of shape ``(N_i, C, H, W)``; samples
    are numbered across the parts in order. The arrays are cached after the
    first load and left out of the pickled state.
    """

    classes: list[str]
    targets: list[int]

    def __init__(self) -> None:
        self._parts: list[np.ndarray] | None = None

    def _load_parts(self) -> list[np.ndarray]:
        raise NotImplementedError

    def _finish(self, image: torch.Tensor) -> torch.Tensor:
        """Post-process decoded ``(..., C, H, W)`` images (one, or a batch); identity by default."""
        return image

    def arrays(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole dataset at once, on the host: ``(N, C, H, W)`` uint8 images and ``(N,)`` int64 labels.

        ``images[i], labels[i]`` equal ``self[i]``; ``_finish`` runs on batches of ``chunk`` images. Used to hold
        the dataset on the training device (:class:`~byol.data.device_data.DeviceBatches`).
        """
        parts = self._parts if self._parts is not None else self._load_parts()
        images = torch.cat([torch.from_numpy(np.ascontiguousarray(part, dtype=np.uint8)) for part in parts])
        if len(images) != len(self):
            raise IndexError(f"{len(images)} images read from disk for {len(self)} labels (did the files change?)")
        images = torch.cat([self._finish(batch) for batch in images.split(chunk)])
        return images, torch.tensor(self.targets, dtype=torch.int64)

    @property
    def num_classes(self) -> int:
        """Number of classes (``0`` for an unlabeled dataset)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.targets[index]
        position = index + len(self) if index < 0 else index
        if self._parts is None:
            self._parts = self._load_parts()
        for part in self._parts:
            if position < len(part):
                image = torch.from_numpy(np.array(part[position], dtype=np.uint8, order="C"))
                return self._finish(image), label
            position -= len(part)
        raise IndexError(f"sample {index} is missing from the image arrays read from disk (did the files change?)")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_parts"] = None
        return state


class ImageFolder(Dataset[tuple[torch.Tensor, int]]):
    """Images under a folder, decoded and centre-cropped to ``(C, size, size)`` uint8.

    Layouts:
        * labeled: ``root/<class>/**/<image>``; classes are the sorted names of
          the (non-hidden) sub-folders of ``root``, images are found
          recursively in each and sorted by path. Image files directly in
          ``root`` are ignored (with a warning).
        * unlabeled: ``root/<image>`` with no sub-folder holding images; all
          labels are ``-1`` and ``classes`` is empty.

    Each image is decoded with PIL (EXIF orientation applied; 16-bit
    grayscale scaled to 8 bits), converted to RGB (``C = 3``) or to
    grayscale ``L`` (``C = 1``), resized so its shorter
    side is ``size`` (bilinear, antialiased) and centre-cropped to
    ``size x size``. A JPEG at least twice ``size`` on both sides is decoded
    at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several times faster for
    large photos), keeping both sides at least ``size``, before that resize.
    Hidden files and folders (names starting with ``.``) are ignored.

    A ``DataLoader`` with a batch size calls :meth:`__getitems__`, which reads a batch of files at once and,
    unless ``decode="pil"``, decodes its JPEGs together with ``torchvision.io.decode_jpeg`` (libjpeg-turbo, as
    PIL's; ``"device"``: on the training device, after the transfer). JPEGs that PIL would decode differently
    (CMYK, EXIF-rotated, drafted at reduced scale) and other formats take the per-file PIL path above.

    Args:
        root: the folder.
        size: output side length ``S``; samples are ``(C, S, S)`` uint8.
        grayscale: decode to one channel instead of three.
        on_corrupt: ``"raise"``: a file that fails to decode raises
            ``RuntimeError`` (naming the file) when it is loaded. ``"skip"``:
            every file is decoded once at construction; the ones that fail are
            dropped, listed in ``skipped`` and reported with a warning.
        extensions: file suffixes (case-insensitive) that count as images.
        decode: how :meth:`__getitems__` decodes a batch's JPEGs. ``"pil"``: one
            by one with PIL, as :meth:`__getitem__`. ``"cpu"``: together with
            torchvision's decoder, in the worker (the same pixels as PIL for RGB
            files). ``"device"``: not in the worker: the batch's images are an
            :class:`EncodedImages` that the transfer to the device (Lightning's
            ``.to(device)``) decodes there, with nvjpeg on a GPU; needs
            :func:`collate_images` as the loader's ``collate_fn``
            (:class:`~byol.data.DataModule`'s loaders use it).

    Attributes:
        classes: sorted class names (empty when unlabeled).
        paths: image file paths, in sample order.
        targets: labels in sample order (``-1`` when unlabeled).
        skipped: files dropped because they failed to decode (``"skip"`` only).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a folder.
        ValueError: no image with one of ``extensions`` was found, or none of
            them could be decoded.
    """

    def __init__(
        self,
        root: str | Path,
        size: int,
        grayscale: bool = False,
        on_corrupt: Literal["raise", "skip"] = "raise",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        decode: Literal["pil", "cpu", "device"] = "cpu",
    ) -> None:
        _check_size(size)
        if on_corrupt not in ("raise", "skip"):
            raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")
        if decode not in ("pil", "cpu", "device"):
            raise ValueError(f"decode must be 'pil', 'cpu' or 'device', got {decode!r}")
        self.decode = decode
        self.root = Path(root)
        self.size = size
        self.grayscale = grayscale
        self.extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        if not self.root.exists():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a folder: {self.root}")

        self.classes, self.paths, self.targets = self._scan()
        if not self.paths:
            raise ValueError(f"no images with extensions {', '.join(self.extensions)} found under {self.root}")

        self.skipped: list[Path] = []
        if on_corrupt == "skip":
            self._drop_corrupt()

    def _images_in(self, folder: Path, recursive: bool) -> list[Path]:
        candidates = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(
            p
            for p in candidates
            if p.suffix.lower() in self.extensions
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.is_file()
        )

    def _scan(self) -> tuple[list[str], list[Path], list[int]]:
        """Find the classes and the images: ``(classes, paths, targets)``."""
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        per_class = [self._images_in(folder, recursive=True) for folder in folders]
        top_level = self._images_in(self.root, recursive=False)
        if not any(per_class):
            return [], top_level, [-1] * len(top_level)
        if top_level:
            warnings.warn(
                f"{self.root} has class sub-folders; ignoring {len(top_level)} image file(s) directly in it",
                stacklevel=3,
            )
        paths = [path for images in per_class for path in images]
        targets = [label for label, images in enumerate(per_class) for _ in images]
        return [folder.name for folder in folders], paths, targets

    def _drop_corrupt(self) -> None:
        """Decode every file once; drop (and warn about) the ones that fail."""
        keep = []
        for i, path in enumerate(tqdm(self.paths, desc=f"Checking images in {self.root}", unit="img")):
            try:
                self._decode(path)
            except RuntimeError:
                self.skipped.append(path)
            else:
                keep.append(i)
        if not self.skipped:
            return
        if not keep:
            raise ValueError(f"none of the {len(self.paths)} images under {self.root} could be decoded")
        self.paths = [self.paths[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]
        shown = ", ".join(p.name for p in self.skipped[:5])
        more = ", ..." if len(self.skipped) > 5 else ""
        warnings.warn(
            f"skipped {len(self.skipped)} image(s) under {self.root} that failed to decode: {shown}{more}",
            stacklevel=3,
        )

    def _decode(self, path: Path, data: bytes | None = None) -> Image.Image:
        """Fully decode one file (its bytes ``data`` if given) to an RGB or L PIL image; ``RuntimeError`` naming
        the file on failure."""
        try:
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                img.draft(None, (self.size, self.size))  # JPEG: decode at 1/2-1/8 scale while both sides stay >= size
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.mode == "P" and "transparency" in img.info:
                    img = img.convert("RGBA")
                elif img.mode == "I" or img.mode.startswith("I;16"):
                    wide = np.asarray(img).astype(np.float64)
                    img = Image.fromarray(np.rint(wide / 257.0).clip(0, 255).astype(np.uint8))
                return img.convert("L" if self.grayscale else "RGB")
        except Exception as e:
            raise RuntimeError(
                f"failed to decode image {path}: {e}; replace or remove the file, or set on_corrupt: skip"
            ) from e

    @property
    def num_classes(self) -> int:
        """Number of classes (``0`` for an unlabeled folder)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)

    def _pil_image(self, index: int, data: bytes | None = None) -> torch.Tensor:
        """Sample ``index`` decoded by PIL (from its bytes ``data`` if given): uint8 ``(C, size, size)``."""
        array = np.asarray(self._decode(self.paths[index], data))
        image = torch.from_numpy(array.copy())
        image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
        return _fit_square(image, self.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Return ``(image, label)``: ``image`` is uint8 ``(C, size, size)``, decoded by PIL."""
        return self._pil_image(index), self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor | EncodedJpeg, int]]:
        """``[(image, label)]`` for a batch of indices, in order (``DataLoader``'s auto-collation calls this).

        ``decode="pil"``: ``[self[i] for i in indices]``. Otherwise each file is read once; the JPEGs that
        torchvision decodes as PIL does (:func:`_plain_jpeg`) are decoded together by :func:`decode_jpeg_batch`
        (``"cpu"``) or left encoded as :class:`EncodedJpeg` (``"device"``); every other file is decoded by PIL
        as in :meth:`__getitem__`. Decoded images are uint8 ``(C, size, size)``.
        """
        if self.decode == "pil":
            return [self[i] for i in indices]
        images: list[torch.Tensor | EncodedJpeg] = []
        for i in indices:
            data = self._read(self.paths[i])
            plain = _plain_jpeg(data, self.size)
            images.append(EncodedJpeg(data, self.size, self.grayscale, str(self.paths[i])) if plain
                          else self._pil_image(i, data))
        if self.decode == "cpu":
            self._decode_encoded(images, indices)
        return [(image, self.targets[i]) for image, i in zip(images, indices)]

    def _decode_encoded(self, images: list[torch.Tensor | EncodedJpeg], indices: Sequence[int]) -> None:
        """Replace the :class:`EncodedJpeg` in ``images`` by their decoded ``(C, size, size)`` images, in place."""
        at = [k for k, image in enumerate(images) if isinstance(image, EncodedJpeg)]
        if not at:
            return
        files = [torch.from_numpy(np.frombuffer(images[k].data, dtype=np.uint8).copy()) for k in at]
        try:
            decoded = list(decode_jpeg_batch(files, self.size, "cpu", self.grayscale))
        except RuntimeError:  # a file libjpeg rejects: PIL decodes it as it can, or raises naming it
            decoded = [self._pil_image(indices[k]) for k in at]
        for k, image in zip(at, decoded):
            images[k] = image

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise RuntimeError(f"failed to read image {path}: {e}") from e


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only the globals needed to rebuild numpy arrays."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self.path}: refusing to load global {module}.{name} (only numpy arrays are allowed)"
            ) from None


def _load_pickle(path: Path) -> dict[bytes, Any]:
    """Read one CIFAR pickle file (a dict with bytes keys) with the restricted unpickler."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with path.open("rb") as f:
        obj = _RestrictedUnpickler(f, path).load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _cifar_images(batch: dict[bytes, Any], path: Path) -> np.ndarray:
    """The ``b"data"`` entry of a CIFAR batch, ``(N, 3072)`` uint8, as ``(N, 3, 32, 32)``."""
    data = np.asarray(batch.get(b"data"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: expected b'data' of shape (N, 3072) uint8, got {data.shape} {data.dtype}")
    return data.reshape(-1, 3, 32, 32)


def _cifar_labels(batch: dict[bytes, Any], key: bytes, count: int, num_classes: int, path: Path) -> list[int]:
    if key not in batch:
        raise ValueError(f"{path}: missing key {key!r}")
    labels = [int(v) for v in batch[key]]
    if len(labels) != count:
        raise ValueError(f"{path}: {len(labels)} labels for {count} images")
    if any(not 0 <= v < num_classes for v in labels):
        raise ValueError(f"{path}: labels outside [0, {num_classes})")
    return labels


def _class_names(meta: dict[bytes, Any], key: bytes, path: Path) -> list[str]:
    if key not in meta:
        raise ValueError(f"{path}: missing key {key!r}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def _resolve_root(root: str | Path, subfolder: str) -> Path:
    """``root/subfolder`` if that folder exists, else ``root`` (which must exist)."""
    root = Path(root)
    if (root / subfolder).is_dir():
        return root / subfolder
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    return root


class CIFAR10(_ArrayImages):
    """CIFAR-10 from the official python pickle batches: ``(3, 32, 32)`` uint8 images.

    Reads ``data_batch_1`` ... ``data_batch_5`` (train) or ``test_batch``
    (test) and ``batches.meta`` from ``root``, which is either the
    ``cifar-10-batches-py`` folder or its parent. Files are unpickled with a
    restricted unpickler that refuses any global other than numpy's array
    reconstruction.

    Args:
        root: the ``cifar-10-batches-py`` folder or its parent.
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).

    Attributes:
        classes: the 10 class names from ``batches.meta``.
        targets: labels in ``[0, 10)``, in sample order.

    Raises:
        FileNotFoundError: ``root`` or a batch file is missing.
        pickle.UnpicklingError: a file asks for a global that is not allowed.
        ValueError: a file does not have the expected content.
    """

    def __init__(self, root: str | Path, split: Literal["train", "test"] = "train") -> None:
        super().__init__()
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.root = _resolve_root(root, "cifar-10-batches-py")
        self.split = split
        meta_path = self.root / "batches.meta"
        self.classes = _class_names(_load_pickle(meta_path), b"label_names", meta_path)
        images, self.targets = self._read()
        self._parts = [images]

    def _files(self) -> list[Path]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if self.split == "train" else ["test_batch"]
        return [self.root / name for name in names]

    def _read(self) -> tuple[np.ndarray, list[int]]:
        images, targets = [], []
        for path in self._files():
            batch = _load_pickle(path)
            data = _cifar_images(batch, path)
            targets += _cifar_labels(batch, b"labels", len(data), len(self.classes), path)
            images.append(data)
        return np.concatenate(images), targets

    def _load_parts(self) -> list[np.ndarray]:
        return [self._read()[0]]


class CIFAR100(_ArrayImages):
    """CIFAR-100 from the official python pickle files: ``(3, 32, 32)`` uint8 images.

    Reads ``train`` or ``test`` and ``meta`` from ``root``, which is either the
    ``cifar-100-python`` folder or its parent, with the same restricted
    unpickler as :class:`CIFAR10`.

    Args:
        root: the ``cifar-100-python`` folder or its parent.
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        label: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Attributes:
        classes: the class names from ``meta`` for the chosen label kind.
        targets: labels in ``[0, num_classes)``, in sample order.

    Raises:
        FileNotFoundError: ``root`` or a file is missing.
        pickle.UnpicklingError: a file asks for a global that is not allowed.
        ValueError: a file does not have the expected content.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        label: Literal["fine", "coarse"] = "fine",
    ) -> None:
        super().__init__()
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if label not in ("fine", "coarse"):
            raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
        self.root = _resolve_root(root, "cifar-100-python")
        self.split = split
        self.label = label
        meta_path = self.root / "meta"
        self.classes = _class_names(_load_pickle(meta_path), f"{label}_label_names".encode(), meta_path)
        images, self.targets = self._read()
        self._parts = [images]

    def _read(self) -> tuple[np.ndarray, list[int]]:
        path = self.root / self.split
        batch = _load_pickle(path)
        images = _cifar_images(batch, path)
        key = f"{self.label}_labels".encode()
        return images, _cifar_labels(batch, key, len(images), len(self.classes), path)

    def _load_parts(self) -> list[np.ndarray]:
        return [self._read()[0]]


class STL10(_ArrayImages):
    """STL-10 from the official binary files: ``(3, 96, 96)`` uint8 images.

    Reads ``<split>_X.bin`` (images stored column-major, 3x96x96 bytes each),
    ``<split>_y.bin`` (labels 1..10, stored as 0..9) and ``class_names.txt``
    from ``root`` or its ``stl10_binary`` sub-folder. Image files are
    memory-mapped and read one sample at a time.

    Args:
        root: the ``stl10_binary`` folder or its parent.
        split: ``"train"`` (5,000 labeled), ``"test"`` (8,000 labeled),
            ``"unlabeled"`` (100,000, label ``-1``) or ``"train+unlabeled"``
            (the train images, then the unlabeled ones).

    Attributes:
        classes: the 10 class names (empty for ``"unlabeled"``).
        targets: labels in ``[0, 10)``, ``-1`` for unlabeled samples.

    Raises:
        FileNotFoundError: ``root`` or a file is missing.
        ValueError: an image file's size is not a positive multiple of
            ``3 * 96 * 96``, or a label file does not match its images.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test", "unlabeled", "train+unlabeled"] = "train",
    ) -> None:
        super().__init__()
        parts = {"train": ["train"], "test": ["test"], "unlabeled": ["unlabeled"]}
        parts["train+unlabeled"] = ["train", "unlabeled"]
        if split not in parts:
            raise ValueError(f"split must be one of {sorted(parts)}, got {split!r}")
        self.root = _resolve_root(root, "stl10_binary")
        self.split = split
        self.image_files = [self.root / f"{part}_X.bin" for part in parts[split]]

        self.classes = [] if split == "unlabeled" else self._read_class_names()
        self.targets = []
        for part, image_file in zip(parts[split], self.image_files):
            count = self._count_images(image_file)
            if part == "unlabeled":
                self.targets += [-1] * count
            else:
                self.targets += self._read_labels(self.root / f"{part}_y.bin", count)

    def _read_class_names(self) -> list[str]:
        path = self.root / "class_names.txt"
        if not path.is_file():
            raise FileNotFoundError(f"file not found: {path}")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    @staticmethod
    def _count_images(path: Path) -> int:
        if not path.is_file():
            raise FileNotFoundError(f"file not found: {path}")
        size = path.stat().st_size
        if size == 0 or size % _STL10_IMAGE_BYTES:
            raise ValueError(f"{path}: size {size} bytes is not a positive multiple of {_STL10_IMAGE_BYTES} (3x96x96)")
        return size // _STL10_IMAGE_BYTES

    def _read_labels(self, path: Path, count: int) -> list[int]:
        if not path.is_file():
            raise FileNotFoundError(f"file not found: {path}")
        labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
        if len(labels) != count:
            raise ValueError(f"{path}: {len(labels)} labels for {count} images")
        if len(labels) and (labels.min() < 1 or labels.max() > len(self.classes)):
            raise ValueError(f"{path}: labels outside [1, {len(self.classes)}]")
        return (labels - 1).tolist()

    def _load_parts(self) -> list[np.ndarray]:
        side = _STL10_SIDE
        return [
            np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, side, side).transpose(0, 1, 3, 2)
            for path in self.image_files
        ]


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an idx file (optionally gzipped) of unsigned bytes; shape from its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    found = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if found != magic:
        raise ValueError(f"{path}: not an idx file with magic number {magic} (found {found})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated idx header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise ValueError(f"{path}: {len(data) - header} data bytes, header says shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_file(root: Path, name: str) -> Path:
    """``root/name`` or ``root/name.gz``, whichever exists."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"file not found: {root / name} (nor {root / name}.gz)")


class MNIST(_ArrayImages):
    """MNIST from the idx files (gzipped or not): ``(1, size, size)`` uint8 images.

    Reads ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (train) or
    ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` (test), each
    optionally with a ``.gz`` suffix, from ``root``. The 28x28 images are
    resized (bilinear, antialiased) when ``size != 28``.

    Args:
        root: folder holding the idx files.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        size: output side length ``S``; samples are ``(1, S, S)`` uint8.

    Attributes:
        classes: the 10 class names.
        targets: labels in ``[0, 10)``, in sample order.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file has the wrong magic number or does not match its
            header, or the label and image counts differ.
    """

    CLASSES: tuple[str, ...] = (
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    )

    def __init__(self, root: str | Path, split: Literal["train", "test"] = "train", size: int = 28) -> None:
        super().__init__()
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        _check_size(size)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.root}")
        self.split = split
        self.size = size
        prefix = "train" if split == "train" else "t10k"
        self.images_file = _find_file(self.root, f"{prefix}-images-idx3-ubyte")
        self.labels_file = _find_file(self.root, f"{prefix}-labels-idx1-ubyte")
        self.classes = list(self.CLASSES)

        images = self._load_parts()[0]
        labels = _read_idx(self.labels_file, _IDX_LABELS_MAGIC)
        if len(labels) != len(images):
            raise ValueError(f"{self.labels_file}: {len(labels)} labels for {len(images)} images in {self.images_file}")
        if len(labels) and labels.max() >= len(self.classes):
            raise ValueError(f"{self.labels_file}: labels outside [0, {len(self.classes)})")
        self.targets = labels.astype(np.int64).tolist()
        self._parts = [images]

    def _load_parts(self) -> list[np.ndarray]:
        return [_read_idx(self.images_file, _IDX_IMAGES_MAGIC)[:, None]]

    def _finish(self, image: torch.Tensor) -> torch.Tensor:
        return _resize_square(image, self.size)


class FashionMNIST(MNIST):
    """Fashion-MNIST from the idx files: same files, format and arguments as :class:`MNIST`."""

    CLASSES = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )


class Digits(_ArrayImages):
    """scikit-learn's embedded 8x8 digits (1,797 images): ``(1, size, size)`` uint8 images.

    Pixel values ``0..16`` are scaled to ``round(v * 255 / 16)`` and the images
    upsampled (bilinear) to ``size x size``. The train/test split is a
    stratified split by ``sklearn.model_selection.train_test_split`` with
    ``random_state=seed``; samples keep their original order within a split.
    No network access is needed.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"`` (all 1,797 images).
        size: output side length ``S``; samples are ``(1, S, S)`` uint8.
        test_fraction: fraction of the images in the test split, in ``(0, 1)``.
        seed: seed of the split.

    Attributes:
        classes: ``"0"`` ... ``"9"``.
        indices: indices of this split's samples into the full 1,797 images.
        targets: labels in ``[0, 10)``, in sample order.
    """

    def __init__(
        self,
        split: Literal["train", "test", "all"] = "train",
        size: int = 16,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        super().__init__()
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        _check_size(size)
        self.split = split
        self.size = size
        self.classes = [str(d) for d in range(10)]

        labels = load_digits().target
        indices = np.arange(len(labels))
        if split != "all":
            train, test = train_test_split(indices, test_size=test_fraction, stratify=labels, random_state=seed)
            indices = np.sort(train if split == "train" else test)
        self.indices: list[int] = indices.tolist()
        self.targets = labels[indices].astype(np.int64).tolist()

    def _load_parts(self) -> list[np.ndarray]:
        from sklearn.datasets import load_digits

        images = np.rint(load_digits().images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        return [images[self.indices, None]]

    def _finish(self, image: torch.Tensor) -> torch.Tensor:
        return _resize_square(image, self.size)
