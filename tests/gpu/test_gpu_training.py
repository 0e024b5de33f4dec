"""CUDA-only checks of BYOL training on a GPU: bf16-mixed, channels_last, torch.compile, a 1-GPU Lightning fit.

Skipped without a GPU; run them on one with `pytest tests/gpu`. No test asserts a time: speed is `make bench`'s job.
"""

import copy

import lightning as L
import pytest
import torch

from byol import TimmBackbone
from byol.core import ema_update

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`"),  # training_step without a Trainer
]
needs_bf16 = pytest.mark.skipif(
    not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), reason="needs a GPU with bf16"
)

TINY_RESNET = {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}


@pytest.fixture
def exact_fp32(monkeypatch):
    """Plain fp32 convolutions and matmuls (no TF32), so two layouts or two compilers can be compared closely."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


def all_grads(module: torch.nn.Module) -> torch.Tensor:
    """Every gradient of ``module`` as one vector (biases before a BatchNorm have ~0 gradients: compare globally)."""
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])


def digits_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 8x8 grey images and unlabeled targets, on the GPU (what tiny_byol's views expect)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    return images.cuda(), torch.full((n,), -1, device="cuda")


class DeviceRecorder(L.Callback):
    """Records where the module and its batches are during training (Lightning moves it back to CPU afterwards)."""

    def __init__(self) -> None:
        self.devices: set[str] = set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.devices.add(pl_module.device.type)
        self.devices.add(batch[0].device.type)


@needs_bf16
def test_bf16_autocast_step_runs_the_backbone_in_bf16_and_keeps_fp32_weights(make_model):
    model = make_model().cuda()
    seen = []
    model.online.backbone.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        v1, v2, labels = model.training_views(digits_batch())
        loss = model.training_step((v1, v2, labels), 0)
    loss.backward()
    opt.step()
    assert v1.dtype == torch.float32  # the views are made in float32 under autocast
    assert torch.isfinite(loss) and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(p.grad).all() for p in model.online.parameters() if p.grad is not None)


@needs_bf16
def test_bf16_mixed_lightning_fit_on_one_gpu(make_model, make_data, make_trainer):
    model = make_model(channels_last=True)
    before = copy.deepcopy(model.online.state_dict())
    target_before = copy.deepcopy(model.target.state_dict())
    recorder = DeviceRecorder()
    trainer = make_trainer(accelerator="gpu", devices=1, max_steps=3, precision="bf16-mixed", callbacks=[recorder])
    trainer.fit(model, make_data())
    assert trainer.global_step == 3 and recorder.devices == {"cuda"}
    after, target_after = model.online.state_dict(), model.target.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(target_before[k], target_after[k]) for k in target_before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def test_channels_last_step_matches_contiguous(make_model, exact_fp32):
    contiguous = make_model().cuda()
    channels_last = make_model(channels_last=True).cuda()
    channels_last.load_state_dict(contiguous.state_dict())
    assert channels_last.online.backbone.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(2)
    v1, v2, labels = contiguous.training_views(digits_batch())
    v1_cl, v2_cl = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
    loss = contiguous.training_step((v1, v2, labels), 0)
    loss_cl = channels_last.training_step((v1_cl, v2_cl, labels), 0)
    assert abs(loss_cl.item() - loss.item()) <= 1e-4 * max(1.0, abs(loss.item()))
    loss.backward()
    loss_cl.backward()
    assert relative_error(all_grads(channels_last.online), all_grads(contiguous.online)) < 1e-3


def test_channels_last_training_views_are_channels_last(make_model):
    model = make_model(channels_last=True).cuda()
    v1, v2, _ = model.training_views(digits_batch())
    assert v1.is_contiguous(memory_format=torch.channels_last) and v2.is_contiguous(memory_format=torch.channels_last)


def test_compiled_backbone_matches_eager_forward_and_backward(exact_fp32):
    torch.manual_seed(0)
    eager = TimmBackbone("resnet10t", cifar_stem=True, model_kwargs=TINY_RESNET).cuda()
    compiled = copy.deepcopy(eager)
    compiled.compile()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    out, out_compiled = eager(x), compiled(x)
    assert relative_error(out_compiled, out) < 1e-4
    out.square().sum().backward()
    out_compiled.square().sum().backward()
    assert relative_error(all_grads(compiled), all_grads(eager)) < 1e-3


def test_compiled_backbone_trains_and_the_ema_reaches_its_weights(make_model):
    model = make_model().cuda()
    model.online.backbone.compile()
    model.target.module.backbone.compile()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    online_before = [p.detach().clone() for p in model.online.parameters()]
    target_before = [p.detach().clone() for p in model.target.parameters()]
    loss = model.training_step(model.training_views(digits_batch()), 0)
    loss.backward()
    opt.step()
    ema_update(model.target, model.online, 0.9)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(online_before, model.online.parameters()))
    # compiling wraps forward only: the EMA sees the trained weights, t = 0.9 t_prev + 0.1 o
    for t, t_prev, o in zip(model.target.parameters(), target_before, model.online.parameters()):
        torch.testing.assert_close(t, 0.9 * t_prev + 0.1 * o)


def test_one_gpu_lightning_fit_smoke(make_model, make_data, make_trainer):
    model = make_model()
    recorder = DeviceRecorder()
    trainer = make_trainer(accelerator="gpu", devices=1, max_epochs=1, callbacks=[recorder])
    trainer.fit(model, make_data(n=64, batch_size=16))
    assert trainer.global_step == 4 and recorder.devices == {"cuda"}
    assert all(torch.isfinite(p).all() for p in model.parameters())


@needs_bf16
def test_compile_option_fits_in_bf16_with_channels_last(make_model, make_data, make_trainer):
    """The configuration the GPU recipes can switch on: inductor-compiled networks, bf16-mixed, channels_last."""
    model = make_model(compile=True, channels_last=True)
    trainer = make_trainer(accelerator="gpu", devices=1, max_epochs=2, precision="bf16-mixed")
    trainer.fit(model, make_data(n=64, batch_size=16))
    assert trainer.global_step == 8 and model.online._compiled_call_impl is not None
    assert all(torch.isfinite(p).all() for p in model.parameters())


@needs_bf16
@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "imagenet-recipe"])
def test_a_training_step_never_waits_for_the_gpu(make_model, rgb):
    """Views, forward, loss, probe, backward, optimizer and EMA queue their kernels without any host-device
    synchronisation (CUDA's sync debug mode raises on one): the host can run ahead of the GPU."""
    from byol import BYOL
    from byol.views import BYOLImageViews

    if rgb:
        backbone = TimmBackbone("resnet10t", cifar_stem=True, model_kwargs=TINY_RESNET)
        model = BYOL(backbone, BYOLImageViews(64), projector_hidden_dim=32, projection_dim=16,
                     predictor_hidden_dim=32, num_classes=10, channels_last=True).cuda()
        images = torch.randint(0, 256, (8, 3, 72, 72), dtype=torch.uint8, device="cuda")
    else:
        model = make_model().cuda()
        images = digits_batch(8)[0]
    labels = torch.tensor([3, -1, 5, -1, 0, 1, -1, 2], device="cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.training_step(model.training_views((images, labels)), 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(model.target, model.online, 0.99)

    step()  # first call: cuDNN autotuning, optimizer state, lazy initialisation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_timms_lars_takes_its_multi_tensor_path_on_cuda_and_matches_the_loop():
    """The recipes' LARS (timm's ``Lars``, foreach left to its default) runs the multi-tensor update on CUDA, which
    gives the per-parameter loop's parameters after a few steps."""
    from timm.optim import Lars
    from timm.optim._helpers import _resolve_foreach

    g = torch.Generator(device="cuda").manual_seed(0)
    shapes = [(64, 3, 3, 3), (64,), (256, 64), (256,)]
    start = [torch.randn(s, device="cuda", generator=g) for s in shapes]
    grads = [[torch.randn(s, device="cuda", generator=g) for s in shapes] for _ in range(3)]
    results = {}
    for foreach in (None, False):
        params = [p.clone().requires_grad_(True) for p in start]
        opt = Lars(params, lr=1.0, momentum=0.9, weight_decay=1e-5, trust_coeff=0.02, trust_clip=True, foreach=foreach)
        if foreach is None:
            assert _resolve_foreach(None, params=params)
        for step in grads:
            for p, grad in zip(params, step):
                p.grad = grad.clone()
            opt.step()
        results[foreach] = params
    for a, b in zip(results[None], results[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
