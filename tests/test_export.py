"""Backbone export and loading: exact round trips, timm compatibility, strict errors, safe unpickling."""

import json
import os
import pickle

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from byol import TimmBackbone, export_backbone, load_backbone, load_preprocess
from byol.core.checkpoint_io import blocked_globals, read_checkpoint
from byol.export import export_checkpoint
from byol.views import ImagePreprocess

PRE = ImagePreprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).export_config()


def _trained_like(backbone: torch.nn.Module) -> torch.nn.Module:
    """Perturb every weight and BN statistic so that a round trip cannot pass by re-initialisation."""
    torch.manual_seed(1)
    with torch.no_grad():
        for t in list(backbone.parameters()) + [b for b in backbone.buffers() if b.is_floating_point()]:
            t.add_(torch.rand_like(t) * 0.1)
    return backbone.eval()


def test_export_then_load_gives_identical_outputs(tmp_path):
    backbone = _trained_like(TimmBackbone("resnet18", cifar_stem=True))
    export_backbone(backbone, tmp_path, PRE, method="BYOL")
    loaded = load_backbone(tmp_path)
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), backbone(x), rtol=0, atol=0)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["backbone"]["name"] == "resnet18" and config["backbone"]["cifar_stem"] is True
    assert config["num_features"] == 512 and config["method"] == "BYOL" and len(config["sha256"]) == 64
    pre = load_preprocess(tmp_path)
    assert isinstance(pre, ImagePreprocess) and pre.size == 32


def test_timm_loads_the_exported_weights_directly(tmp_path):
    backbone = _trained_like(TimmBackbone("resnet18"))
    export_backbone(backbone, tmp_path, PRE)
    model = timm.create_model(
        "resnet18", pretrained=True, num_classes=0,
        pretrained_cfg_overlay=dict(file=str(tmp_path / "model.safetensors")),
    ).eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), backbone(x), rtol=0, atol=0)


def test_strict_loading_lists_missing_and_unexpected_keys(tmp_path):
    export_backbone(TimmBackbone("resnet18"), tmp_path, PRE)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    state["extra.weight"] = state.pop("layer4.1.conv2.weight")
    save_file(state, weights)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("sha256")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError) as err:
        load_backbone(tmp_path)
    assert "missing keys (1): layer4.1.conv2.weight" in str(err.value)
    assert "unexpected keys (1): extra.weight" in str(err.value)


def test_replaced_weights_fail_the_checksum(tmp_path):
    export_backbone(TimmBackbone("resnet18"), tmp_path, PRE)
    state = load_file(tmp_path / "model.safetensors")
    state["fc_norm_free"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="sha256"):
        load_backbone(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux and macOS


@pytest.mark.parametrize("fmt", ["torch.save", "plain pickle"])
def test_checkpoint_that_runs_code_is_refused_and_the_blocked_global_named(tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.ckpt"
    if fmt == "torch.save":
        torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _RunsCode()}, evil)
    else:  # a plain pickle of a tensor would itself need a blocked global (torch.storage._load_from_bytes)
        evil.write_bytes(pickle.dumps({"state_dict": {"w": [1.0, 2.0]}, "payload": _RunsCode()}, protocol=4))
    assert blocked_globals(evil) == [SYSTEM]
    for load in (read_checkpoint, lambda p: export_checkpoint(p, tmp_path / "out")):
        with pytest.raises(ValueError) as err:
            load(evil)
        assert f"refusing to load {evil}: unpickling it would call {SYSTEM}" in str(err.value)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


def test_random_bytes_are_not_a_readable_checkpoint_and_nothing_is_called_code(tmp_path):
    path = tmp_path / "noise.ckpt"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes())
    assert blocked_globals(path) == []
    with pytest.raises(ValueError) as err:
        read_checkpoint(path)
    assert str(err.value).startswith(f"{path} is not a readable checkpoint")
    assert "code" not in str(err.value)


def test_a_clean_checkpoint_imports_only_allowed_globals(tmp_path, make_model, make_trainer):
    """The scan agrees with torch's weights-only loader on a real Lightning checkpoint: nothing is blocked."""
    trainer = make_trainer(max_steps=1)
    trainer.fit(make_model(), _digits())
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    assert blocked_globals(tmp_path / "run.ckpt") == []
    assert read_checkpoint(tmp_path / "run.ckpt")["global_step"] == 1


def _digits():
    from byol.data import DataModule, Digits

    return DataModule(Digits(split="train", size=8), batch_size=32, num_workers=0)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.randn(100, 100)}}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="last.ckpt is not a readable checkpoint"):
        read_checkpoint(path)


def test_missing_export_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_backbone(tmp_path / "nothing")


def test_export_from_a_training_checkpoint(tmp_path, make_model, make_data, make_trainer):
    model = make_model()
    tr = make_trainer(max_steps=2, default_root_dir=tmp_path)
    tr.fit(model, make_data())
    ckpt = tmp_path / "run.ckpt"
    tr.save_checkpoint(ckpt)
    export_checkpoint(ckpt, tmp_path / "exported")
    loaded = load_backbone(tmp_path / "exported")
    pre = load_preprocess(tmp_path / "exported")
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    model.eval()
    torch.testing.assert_close(loaded(pre(images)), model.backbone(model.views.preprocess(images)), rtol=0, atol=0)
    config = json.loads((tmp_path / "exported" / "config.json").read_text())
    assert config["method"] == "BYOL" and config["global_step"] == 2
