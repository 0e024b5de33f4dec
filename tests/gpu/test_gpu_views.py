"""CUDA-only checks of the on-device views (skipped without a GPU; run them on one with `pytest tests/gpu`)."""

import pytest
import torch

from byol.views import BYOLAViews, BYOLImageViews, SmallImageViews

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("views, size, source", [(SmallImageViews(), 32, 32), (BYOLImageViews(64), 64, 80)])
def test_image_views_on_cuda_differ_per_sample(views, size, source):
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, source, source), dtype=torch.uint8)
    batch = image.expand(16, -1, -1, -1).contiguous().cuda()  # 16 copies of one image
    v1, v2 = views.cuda()(batch)
    for v in (v1, v2):
        assert v.device.type == "cuda" and v.dtype == torch.float32 and v.shape == (16, 3, size, size)
        assert torch.isfinite(v).all()
        flat = v.flatten(1)
        # per-sample parameters: the copies of one image become (pairwise) different views
        distinct = sum(not torch.allclose(flat[i], flat[j]) for i in range(16) for j in range(i + 1, 16))
        assert distinct == 16 * 15 // 2
    assert not torch.allclose(v1, v2)


def test_image_views_on_cuda_match_the_cpu_pipeline_in_distribution():
    """Same recipe on both devices: the mean and std of many views agree (the random draws differ)."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    views = SmallImageViews()
    cpu = torch.cat(views(images))
    gpu = torch.cat(views.cuda()(images.cuda())).cpu()
    assert abs(cpu.mean() - gpu.mean()) < 0.1
    assert abs(cpu.std() - gpu.std()) < 0.1


def test_audio_views_on_cuda_differ_per_sample():
    torch.manual_seed(0)
    views = BYOLAViews(norm_stats=(-8.0, 4.0)).cuda()
    wave = 0.1 * torch.randn(views.segment_samples)
    v1, v2 = views(wave.expand(8, -1).contiguous().cuda())
    assert v1.device.type == "cuda" and v1.shape == (8, 1, *views.shape)
    assert torch.isfinite(v1).all() and torch.isfinite(v2).all()
    assert not torch.allclose(v1[0], v1[1]) and not torch.allclose(v1, v2)


def test_crops_on_cuda_are_the_cpu_crops(monkeypatch):
    """The batched weight-matrix resize on CUDA (exact fp32 matmuls) gives the CPU path's pixels, from uint8 images,
    for the same boxes: within one level (the CPU's uint8 kernel rounds after each pass)."""
    from byol.views.resized_crop import resize_crops

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 64, 48), dtype=torch.uint8, generator=g)
    x0, y0 = torch.randint(0, 24, (16,), generator=g), torch.randint(0, 32, (16,), generator=g)
    w, h = torch.randint(4, 25, (16,), generator=g), torch.randint(4, 33, (16,), generator=g)
    boxes = torch.stack([x0, y0, x0 + w, y0 + h], dim=1)  # two crops of each image
    for size in ((16, 16), (40, 40)):
        cpu = resize_crops(images, boxes, size)
        gpu = resize_crops(images.cuda(), boxes, size)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1 / 255 + 1e-5, rtol=0)
