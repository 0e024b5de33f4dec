"""Crops of a batch resized to one size, each with its own box: antialiased bilinear resampling.

Every crop is resampled as ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)`` resamples it (the
resize of torchvision's ``RandomResizedCrop`` on tensors, and PIL's bilinear ``resize``): separable, with a
triangle filter as wide as the shrink factor when shrinking (so a crop shrunk 3x averages about 6 source pixels
per axis, not 2) and plain bilinear interpolation when enlarging, the taps renormalised at the crop's borders.

Two ways to the same numbers, chosen by the device:

- **CPU**: one ``interpolate`` call per crop on its slice of the images, uint8 when the images are uint8 (torch's
  vectorised uint8 kernel, which rounds to whole levels after each of its two passes, as PIL does; so within one
  level of the float result). A loop costs nothing on a CPU, and the separable kernel reads only the taps it
  needs: 32 crops of 96 px from 256 px images in 2-4 ms on one thread, against 25 ms for ``roi_align`` over the
  float images.
- **Accelerators**: the same filter written as two weight matrices per crop, ``Wy (h, H)`` and ``Wx (w, W)``,
  built on the device from the boxes, and ``Wy @ image @ Wx^T`` as batched matrix products: a handful of kernels
  for the whole batch instead of two per crop.

The boxes are integer pixel boxes ``[x0, x1) x [y0, y1)`` drawn on the host; neither path reads the device.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def resize_crops(images: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Crops of ``images`` ``(B, C, H, W)`` (uint8, or float in ``[0, 1]``) resized to ``size`` ``(h, w)``.

    Args:
        images: the source images.
        boxes: ``(R * B, 4)`` integer boxes ``x0, y0, x1, y1`` (``x1``, ``y1`` exclusive); box ``k`` is a crop of
            image ``k % B`` (``R`` crops of every image, crop-major).
        size: output ``(h, w)``.

    Returns:
        float32 ``(R * B, C, h, w)`` in ``[0, 1]``.
    """
    b, c = images.shape[:2]
    if len(boxes) % max(b, 1):
        raise ValueError(f"expected a multiple of the batch ({b}) of boxes, got {len(boxes)}")
    if len(boxes) == 0:
        return torch.empty((0, c, *size), device=images.device)
    if images.device.type == "cpu" and boxes.device.type == "cpu":
        return resize_crops_each(images, boxes, size)
    return resize_crops_batched(images, boxes, size)


def _unit_float(x: Tensor) -> Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def resize_crops_each(images: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """:func:`resize_crops` with one ``interpolate`` per crop (the CPU path; ``boxes`` on the host)."""
    b = images.shape[0]
    crops = [
        F.interpolate(images[k % b, None, :, y0:y1, x0:x1], size=size, mode="bilinear", antialias=True)
        for k, (x0, y0, x1, y1) in enumerate(boxes.long().tolist())
    ]
    return _unit_float(torch.cat(crops))


def resample_weights(start: Tensor, end: Tensor, out: int, full: int) -> Tensor:
    """Antialiased bilinear weights ``(n, out, full)`` that resample the spans ``[start, end)`` (``(n,)``, pixel
    units) of an axis of ``full`` pixels to ``out`` pixels: row ``i`` weighs source pixel ``j`` by the triangle
    ``max(0, 1 - |j + 1/2 - c_i| / s)``, with ``c_i = start + (i + 1/2) * scale`` the output pixel's centre,
    ``scale = (end - start) / out`` and ``s = max(scale, 1)``, zero outside the span, each row summing to 1."""
    start, end = start.float(), end.float()
    scale = (end - start) / out
    support = scale.clamp(min=1.0)
    centre = start[:, None] + scale[:, None] * (torch.arange(out, device=start.device) + 0.5)  # (n, out)
    pixel = torch.arange(full, device=start.device) + 0.5  # (full,) pixel centres
    weights = (1 - (pixel - centre[..., None]).abs() / support[:, None, None]).clamp_(min=0)
    weights = weights * ((pixel >= start[:, None]) & (pixel < end[:, None]))[:, None, :]
    return weights / weights.sum(-1, keepdim=True)


def resize_crops_batched(images: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """:func:`resize_crops` as batched matrix products, ``Wy @ image @ Wx^T`` (the accelerator path): one pair of
    products per ``B`` crops, the images never copied per crop."""
    b, _, height, width = images.shape
    x = images.float()
    boxes = boxes.to(images.device, torch.float32, non_blocking=True)
    scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
    parts = []
    for r in range(len(boxes) // b):
        x0, y0, x1, y1 = boxes[r * b : (r + 1) * b].unbind(1)
        rows = resample_weights(y0, y1, size[0], height) * scale  # (B, h, H)
        cols = resample_weights(x0, x1, size[1], width)  # (B, w, W)
        parts.append(rows[:, None] @ x @ cols[:, None].transpose(-1, -2))
    return torch.cat(parts) if len(parts) > 1 else parts[0]
