"""Random resized crops against torchvision's ``resized_crop`` per sample (crop the box, then resize it bilinearly
with antialiasing), on both paths: one resize per crop (CPU) and batched weight matrices (accelerators)."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from byol.views.image import _RandomResizedCrop
from byol.views.resized_crop import resample_weights, resize_crops, resize_crops_batched, resize_crops_each


def _boxes(corners: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """kornia's crop corners ``(N, 4, 2)`` as ``(top, left, height, width)`` for torchvision."""
    first, last = corners.amin(1).long(), corners.amax(1).long() + 1
    return [(y0, x0, y1 - y0, x1 - x0) for (x0, y0), (x1, y1) in zip(first.tolist(), last.tolist())]


def _reference(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's ``resized_crop`` of crop ``k`` from image ``k % B``, in ``[0, 1]``."""
    crops = [TF.resized_crop(images[k % len(images)], *box, [size, size], antialias=True)
             for k, box in enumerate(_boxes(corners))]
    out = torch.stack(crops)
    return out.float() / 255 if out.dtype == torch.uint8 else out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", [40, 12])  # enlarged crops of a 32 px image, and crops shrunk up to 2.7x
def test_crops_are_torchvisions_resized_crop_of_their_own_image(dtype, size) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    x = x if dtype == torch.uint8 else x.float() / 255
    crop = _RandomResizedCrop((size, size), scale=(0.08, 1.0))
    torch.manual_seed(0)
    out = crop.crops(x, 4)
    corners = crop._params["src"]
    assert out.shape == (12, 3, size, size) and out.dtype == torch.float32
    torch.testing.assert_close(out, _reference(x, corners, size), atol=1e-5, rtol=0)
    assert len(set(_boxes(corners))) == 12  # a box of its own per crop
    torch.manual_seed(1)
    one = crop(x)  # forward: one crop per image
    torch.testing.assert_close(one, _reference(x, crop._params["src"], size), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [40, 12, 5])
def test_batched_matrices_equal_one_resize_per_crop(size) -> None:
    """The accelerator path, run here on the CPU, against the CPU path: the same filter (float input exactly;
    uint8 input within one level: torch's uint8 kernel rounds to whole levels after each of its two passes)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (4, 3, 32, 28), generator=g, dtype=torch.uint8)
    crop = _RandomResizedCrop((size, size), scale=(0.02, 1.0), ratio=(0.5, 2.0))
    torch.manual_seed(2)
    crop.crops(x, 3)
    corners = crop._params["src"]
    boxes = torch.cat([corners.amin(1), corners.amax(1) + 1], 1)
    unit = x.float() / 255
    torch.testing.assert_close(resize_crops_batched(unit, boxes, (size, size)),
                               resize_crops_each(unit, boxes, (size, size)), atol=2e-6, rtol=0)
    torch.testing.assert_close(resize_crops_batched(x, boxes, (size, size)),
                               resize_crops_each(x, boxes, (size, size)), atol=1 / 255 + 1e-5, rtol=0)


def test_resample_weights_worked_by_hand() -> None:
    """Shrinking 4 pixels to 2 (scale 2): centres 1 and 3, triangle of half-width 2, so output 0 weighs pixels
    0, 1, 2 by 0.75, 0.75, 0.25 (pixel centres 0.5, 1.5, 2.5) before normalising; enlarging 2 pixels to 4 is
    bilinear interpolation with the borders held."""
    w = resample_weights(torch.tensor([0.0]), torch.tensor([4.0]), 2, 4)[0]
    torch.testing.assert_close(w, torch.tensor([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7)
    w = resample_weights(torch.tensor([1.0]), torch.tensor([3.0]), 4, 5)[0]  # pixels 1 and 2 of 5
    torch.testing.assert_close(w, torch.tensor([[0, 1, 0, 0, 0], [0, 0.75, 0.25, 0, 0],
                                                [0, 0.25, 0.75, 0, 0], [0, 0, 1, 0, 0]]))


def test_box_count_must_be_a_multiple_of_the_batch_and_zero_boxes_give_zero_crops() -> None:
    x = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="multiple of the batch"):
        resize_crops(x, torch.tensor([[0, 0, 4, 4]] * 4), (2, 2))
    assert resize_crops(x, torch.zeros(0, 4), (2, 2)).shape == (0, 1, 2, 2)
