"""`make bench`'s harness, run at tiny sizes: a broken harness publishes nothing. No test here asserts a time."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from byol.data import ImageFolder

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench"]


def tiny_context(bench, profile_dir: Path | None = None):
    sizes = bench.Sizes(
        repeats=1, ema_repeats=1, views=[(32, 4, 1)], multi_crop=(2, 1), step_batch={"resnet18": 2, "resnet50": 2},
        step_repeats={"resnet18": 1, "resnet50": 1}, step_compile=(), e2e_images=8, e2e_batch=4, e2e_epochs=1,
        e2e_warmup_batches=1, loader_steps=1, loader_rounds=1, loader_jpegs=3,
    )
    return bench.Context(torch.device("cpu"), sizes, workers=0, profile_dir=profile_dir)


def test_ratio_is_ours_speed_over_the_reference_for_rates_and_for_times(bench):
    assert bench.row("x", "rate", "img/s", 30.0, 10.0)["ratio"] == pytest.approx(3.0)
    assert bench.row("x", "time", "ms", 10.0, 30.0, lower_is_better=True)["ratio"] == pytest.approx(3.0)
    assert bench.row("x", "alone", "img/s", 30.0, None)["ratio"] is None


def test_views_rows_compare_ours_with_torchvision_and_lightly_and_say_when_lightly_is_missing(bench, monkeypatch, tmp_path):
    ctx = tiny_context(bench, profile_dir=tmp_path)
    rows = bench.bench_views(ctx)
    assert "aten::" in (tmp_path / "profile_views_32px.txt").read_text()
    assert [r["setting"].split(", vs ")[1].split(",")[0] for r in rows] == ["torchvision", "lightly", "lightly"]
    assert rows[2]["setting"].startswith("DINO multi-crop")
    for r, images in zip(rows, (4, 4, 2)):
        times = r["config"]["times_s"]
        name = r["setting"].split(", vs ")[1].split(",")[0]
        assert r["ours"] == pytest.approx(images / times["ours"][0])
        assert r["reference"] == pytest.approx(images / times[name][0])
        assert r["config"]["threads"] == 1
    monkeypatch.setattr(bench, "lightly_views", lambda size: None)
    monkeypatch.setattr(bench, "lightly_multi_crops", lambda: None)
    rows = bench.bench_views(ctx)
    assert "ratio" in rows[0] and all("lightly is not installed" in r["skipped"] for r in rows[1:])


def test_lightly_views_make_two_normalised_views_of_the_recipe_size(bench):
    from PIL import Image

    v1, v2 = bench.lightly_views(32)(Image.new("RGB", (40, 40), (200, 30, 90)))
    assert v1.shape == v2.shape == (3, 32, 32) and v1.dtype == torch.float32


def test_photo_jpegs_are_read_by_the_image_folder_at_256_px(bench, tmp_path):
    bench.write_photo_jpegs(tmp_path, 2)
    data = ImageFolder(tmp_path, size=256)
    image, label = data[1]
    assert len(data) == 2 and image.shape == (3, 256, 256) and image.dtype == torch.uint8 and label == -1
    assert image.float().std() > 10  # a picture, not a flat field


def test_loader_rows_compare_the_attached_loader_with_a_preloaded_batch(bench, tmp_path):
    rows = bench.bench_loader(tiny_context(bench, profile_dir=tmp_path))
    assert [r["config"]["model"] for r in rows] == ["resnet18", "resnet50"]
    for r in rows:
        img_s = r["config"]["img_s"]
        assert r["ours"] == img_s["attached"][0] > 0 and r["reference"] == img_s["preloaded"][0] > 0
        assert r["ratio"] == pytest.approx(r["ours"] / r["reference"])
        assert 0 <= r["config"]["host_wait_fraction"][0] < 1
        profile = (tmp_path / f"profile_loader_{r['config']['model']}.txt").read_text()
        assert "the host waited for data" in profile and "aten::" in profile


@pytest.mark.parametrize("native_bf16", [False, True], ids=["cpu-without-bf16", "cpu-with-bf16"])
def test_step_rows_are_relative_to_fp32_eager_and_say_why_a_row_was_skipped(bench, monkeypatch, native_bf16):
    """Both answers of the bf16 probe are exercised, whatever this host's CPU has (bf16 is emulated where missing)."""
    monkeypatch.setattr(bench, "STEP_MODELS", {"resnet18": bench.STEP_MODELS["resnet18"]})
    monkeypatch.setattr(bench, "cpu_has_native_bf16", lambda: native_bf16)
    rows = bench.bench_step(tiny_context(bench))
    measured = {r["setting"].split(", ", 3)[-1]: r for r in rows if "skipped" not in r}
    bf16 = {"bf16", "bf16, channels_last"}
    assert set(measured) == {"fp32", "fp32, channels_last"} | (bf16 if native_bf16 else set())
    assert native_bf16 or all("no native bf16" in r["skipped"] for r in rows if "bf16" in r["setting"])
    for name in bf16 & set(measured):
        assert measured[name]["ratio"] == pytest.approx(measured[name]["ours"] / measured["fp32"]["ours"])
    assert measured["fp32"]["ratio"] is None
    cl = measured["fp32, channels_last"]
    assert cl["ratio"] == pytest.approx(cl["ours"] / measured["fp32"]["ours"])
    # By hand: the CIFAR-stem ResNet-18 forward is 555.4M multiply-adds at 32 px (stem 1.8M, stage 1 151.0M,
    # stages 2-4 134.2M each); a BYOL step is about 8 forwards per image (2 views x online forward + backward at
    # twice the forward, 2 target forwards), 2 FLOPs per multiply-add; the heads add about 1%.
    assert cl["gflop_per_img"] == pytest.approx(8 * 2 * 0.5554, rel=0.02)
    assert all(r["skipped"] for r in rows if "skipped" in r)
    assert any("compile" in r["skipped"] for r in rows if "skipped" in r)


def test_gpu_report_script_writes_its_files_and_passes_bench_options_through(tmp_path):
    """On a CPU the GPU tests skip and `--device cpu --only ema` (passed through to bench.py) keeps it short."""
    import os
    import subprocess

    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_report.sh"), str(tmp_path), "--device", "cpu",
                           "--only", "ema"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("nvidia-smi.txt", "gpu_tests.log", "bench.log", "bench.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "| ema |" in (tmp_path / "bench.log").read_text()  # the Markdown table


def test_gpu_busy_samples_while_started_and_is_none_without_a_reader(bench):
    import time

    values = iter(range(1, 10_000))
    busy = bench.GPUBusy(torch.device("cpu"), read=lambda: next(values))
    busy.start()
    time.sleep(0.2)
    busy.stop()
    count = len(busy.samples)
    time.sleep(0.1)  # stopped: no more samples
    assert count >= 2 and len(busy.samples) == count
    assert busy.mean == pytest.approx(sum(range(1, count + 1)) / count)
    assert bench.GPUBusy(torch.device("cpu")).mean is None
