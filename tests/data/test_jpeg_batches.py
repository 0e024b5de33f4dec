"""ImageFolder's batched JPEG decoding (``__getitems__``) against its per-file PIL path."""

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from PIL import Image
from torch.utils.data import DataLoader

from byol.data import DataModule, EncodedImages, ImageFolder, collate_images
from byol.data.image_datasets import _plain_jpeg

SIZE = 20
# JPEG decoder tolerance (levels of 255) between the batched decoders and PIL
MAX_DIFF, MEAN_DIFF = 2, 0.5


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colour image with noise: ``(H, W, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + seed) * np.cos(4 * y), np.cos(5 * x * y + 2), np.sin(3 * (x + y) + seed)], -1)
    return (base * 100 + 128 + rng.normal(0, 12, (height, width, 3))).clip(0, 255).astype(np.uint8)


def _folder(root, extra: bool = True):
    """Two classes of JPEGs of several sizes (4:2:0, 4:4:4, progressive), a grey JPEG and a PNG; with ``extra``,
    files the batched decoder leaves to PIL: a CMYK JPEG, an EXIF-rotated JPEG and a large (drafted) one."""
    files = {
        "cat/a.jpg": dict(shape=(30, 40)),
        "cat/b.jpg": dict(shape=(23, 57), quality=95, subsampling=0),
        "cat/c.jpg": dict(shape=(39, 31), progressive=True),
        "cat/grey.jpg": dict(shape=(35, 26), mode="L"),
        "dog/d.png": dict(shape=(33, 21)),
        "dog/e.jpeg": dict(shape=(20, 20), quality=70),
        "dog/f.JPG": dict(shape=(47, 36)),
    }
    if extra:
        files.update({
            "cat/cmyk.jpg": dict(shape=(28, 34), mode="CMYK"),
            "dog/rotated.jpg": dict(shape=(25, 45), exif=6),
            "dog/large.jpg": dict(shape=(90, 120)),
        })
    for seed, (name, spec) in enumerate(sorted(files.items())):
        path = root / name
        path.parent.mkdir(exist_ok=True)
        image = Image.fromarray(_photo(*spec["shape"], seed)).convert(spec.get("mode", "RGB"))
        if path.suffix == ".png":
            image.save(path)
            continue
        options = {k: spec[k] for k in ("quality", "subsampling", "progressive") if k in spec}
        if "exif" in spec:
            exif = Image.Exif()
            exif[0x0112] = spec["exif"]
            options["exif"] = exif
        image.save(path, "JPEG", **options)
    return root


def _differences(batched: torch.Tensor, reference: torch.Tensor) -> tuple[int, float]:
    diff = (batched.int() - reference.int()).abs()
    return int(diff.max()), float(diff.float().mean())


@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "grey"])
def test_batched_cpu_decoding_equals_the_pil_path(tmp_path, grayscale):
    data = ImageFolder(_folder(tmp_path), size=SIZE, grayscale=grayscale)
    batched_files = [p.name for p in data.paths if _plain_jpeg(p.read_bytes(), SIZE)]
    assert sorted(batched_files) == ["a.jpg", "b.jpg", "c.jpg", "e.jpeg", "f.JPG", "grey.jpg"]

    order = [9, 0, 4, 2, 7, 1, 8, 3, 6, 5]
    batched = data.__getitems__(order)
    reference = [data[i] for i in order]
    assert [label for _, label in batched] == [label for _, label in reference] == [data.targets[i] for i in order]
    for (image, _), (expected, _) in zip(batched, reference):
        assert image.shape == expected.shape == (1 if grayscale else 3, SIZE, SIZE) and image.dtype == torch.uint8
    worst, mean = _differences(torch.stack([i for i, _ in batched]), torch.stack([i for i, _ in reference]))
    # measured with torchvision 0.26 and Pillow 13 (both libjpeg-turbo): identical pixels, RGB and grey; the luma of
    # a colour file can differ by 1 level (libjpeg's Y versus PIL's RGB -> L) on rare pixels
    assert worst <= MAX_DIFF and mean < MEAN_DIFF


def test_a_dataloader_batches_through_getitems_in_the_samplers_order(tmp_path):
    data = ImageFolder(_folder(tmp_path), size=SIZE)
    order = [3, 8, 1, 0, 9, 5, 2, 7, 6, 4]
    loader = DataLoader(data, batch_size=4, sampler=order, collate_fn=collate_images)
    images, labels = (torch.cat(parts) for parts in zip(*loader))
    assert labels.tolist() == [data.targets[i] for i in order]
    worst, mean = _differences(images, torch.stack([data[i][0] for i in order]))
    assert worst <= MAX_DIFF and mean < MEAN_DIFF


def test_pil_mode_is_the_per_file_path(tmp_path):
    data = ImageFolder(_folder(tmp_path), size=SIZE, decode="pil")
    for (image, label), (expected, expected_label) in zip(data.__getitems__([4, 1]), [data[4], data[1]]):
        assert torch.equal(image, expected) and label == expected_label


def test_a_truncated_jpeg_is_named_as_on_the_pil_path(tmp_path):
    """Its header is whole (so it is batched); its data end early."""
    root = _folder(tmp_path, extra=False)
    Image.fromarray(_photo(36, 80, 0)).save(root / "cat/a.jpg", quality=90)  # 36 < 2 * SIZE: not drafted
    whole = (root / "cat/a.jpg").read_bytes()
    (root / "cat/a.jpg").write_bytes(whole[: len(whole) * 3 // 4])
    assert _plain_jpeg((root / "cat/a.jpg").read_bytes(), SIZE)
    with pytest.raises(RuntimeError, match="failed to decode image .*a.jpg"):
        ImageFolder(root, size=SIZE).__getitems__([1, 0])
    encoded = collate_images(ImageFolder(root, size=SIZE, decode="device").__getitems__([1, 0]))
    with pytest.raises(RuntimeError, match=r"failed to decode image\(s\) \S*a.jpg on cpu"):
        move_data_to_device(encoded, torch.device("cpu"))


def test_device_mode_decodes_when_lightning_moves_the_batch(tmp_path):
    """The worker sends the JPEGs encoded (through a real worker process); Lightning's move to the device
    (here the CPU) decodes them, in batch order, with the files PIL decoded in the worker at their places."""
    data = ImageFolder(_folder(tmp_path), size=SIZE, decode="device")
    order = [9, 0, 4, 2, 7, 1, 8, 3, 6, 5]
    loader = DataLoader(data, batch_size=5, sampler=order, collate_fn=collate_images, num_workers=1)
    moved = []
    for encoded, labels in loader:
        assert isinstance(encoded, EncodedImages) and len(encoded) == 5 and sum(encoded.is_jpeg) >= 2
        moved.append(move_data_to_device([encoded, labels], torch.device("cpu")))
    images = torch.cat([images for images, _ in moved])
    assert images.dtype == torch.uint8 and images.shape == (10, 3, SIZE, SIZE)
    assert torch.cat([labels for _, labels in moved]).tolist() == [data.targets[i] for i in order]
    worst, mean = _differences(images, torch.stack([data[i][0] for i in order]))
    assert worst <= MAX_DIFF and mean < MEAN_DIFF


def test_one_byol_step_with_jpegs_decoded_after_the_transfer(tmp_path, make_model, make_trainer):
    data = ImageFolder(_folder(tmp_path), size=8, grayscale=True, decode="device")
    trainer = make_trainer(max_steps=1)
    trainer.fit(make_model(), DataModule(data, batch_size=4, num_workers=0))
    assert trainer.global_step == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvjpeg needs a CUDA device")
@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "grey"])
def test_nvjpeg_decoding_on_the_gpu_is_close_to_the_pil_path(tmp_path, grayscale):
    data = ImageFolder(_folder(tmp_path), size=SIZE, grayscale=grayscale, decode="device")
    order = list(range(len(data)))
    encoded, labels = collate_images(data.__getitems__(order))
    images, labels = move_data_to_device([encoded.pin_memory(), labels], torch.device("cuda"))
    assert images.device.type == "cuda" and images.shape == (len(data), 1 if grayscale else 3, SIZE, SIZE)
    assert labels.tolist() == data.targets
    worst, mean = _differences(images.cpu(), torch.stack([data[i][0] for i in order]))
    # nvjpeg's IDCT and chroma upsampling are not libjpeg-turbo's, and the resize runs in float on the GPU:
    # a looser bound than on the CPU (not measured here: no GPU where this was written)
    assert worst <= 16 and mean < 1.5, (worst, mean)

