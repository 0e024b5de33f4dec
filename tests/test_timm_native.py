"""An exported image backbone is a timm ``local-dir:`` folder: timm alone loads it and gives the same features."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import timm
import torch

import byol
from byol import TimmBackbone
from byol.views import ImagePreprocess

TINY_RESNET = {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}  # the tests' recipe
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2}


def _trained_like(backbone: TimmBackbone) -> TimmBackbone:
    """Perturb every weight and float buffer so that no round trip passes by re-initialisation."""
    torch.manual_seed(1)
    with torch.no_grad():
        for t in list(backbone.parameters()) + [b for b in backbone.buffers() if b.is_floating_point()]:
            t.add_(torch.rand_like(t) * 0.1)
    return backbone.eval()


def _export(backbone: TimmBackbone, path, size: int):
    c = backbone.in_chans
    pre = ImagePreprocess(size, (0.5,) * c, (0.25,) * c).export_config()
    return byol.export_backbone(backbone, path, pre, method="BYOL")


@pytest.mark.parametrize("name, in_chans, kwargs, size", [
    ("resnet10t", 1, TINY_RESNET, 16),
    ("vit_tiny_patch16_224", 3, TINY_VIT, 32),
])
def test_timm_alone_loads_the_folder_with_the_same_features(tmp_path, name, in_chans, kwargs, size):
    backbone = _trained_like(TimmBackbone(name, in_chans=in_chans, model_kwargs=kwargs))
    _export(backbone, tmp_path, size)
    model = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        ours, theirs = byol.load_backbone(tmp_path)(x), model(x)
    assert theirs.shape == (2, backbone.num_features)
    assert torch.equal(theirs, ours) and torch.equal(ours, backbone(x))
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (in_chans, size, size) and list(data["mean"]) == [0.5] * in_chans
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == name.split(".")[0] and config["backbone"]["class"] == "TimmBackbone"
    assert config["method"] == "BYOL" and "preprocessing" in config


def test_cifar_stem_loads_with_timm_and_the_recipe_in_its_config(tmp_path):
    """timm's ResNet has no 3x3 stride-1 stem: pretrained=True names conv1; the config's recipe loads it."""
    backbone = _trained_like(TimmBackbone("resnet10t", in_chans=1, cifar_stem=True, model_kwargs=TINY_RESNET))
    _export(backbone, tmp_path, 8)
    with pytest.raises(RuntimeError, match="conv1.weight"):
        timm.create_model(f"local-dir:{tmp_path}", pretrained=True)
    recipe = json.loads((tmp_path / "config.json").read_text())["timm_cifar_stem"]
    namespace = {"timm": timm, "torch": torch, "safetensors": safetensors}
    exec(recipe.split(": ", 1)[1].replace("DIR", str(tmp_path)), namespace)  # the documented statements, verbatim
    model = namespace["model"].eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), byol.load_backbone(tmp_path)(x))
        assert torch.equal(model(x), backbone(x))


def test_a_folder_exported_before_timm_native_export_still_loads(tmp_path):
    """Older folders kept the rebuild arguments under "architecture" and had no timm fields."""
    backbone = _trained_like(TimmBackbone("resnet10t", in_chans=1, cifar_stem=True, model_kwargs=TINY_RESNET))
    state = {k: v.contiguous() for k, v in backbone.export_state_dict().items()}
    safetensors.torch.save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    config = {"architecture": backbone.export_config(), "num_features": backbone.num_features,
              "preprocessing": ImagePreprocess(8, (0.5,), (0.25,)).export_config(), "method": "BYOL"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(byol.load_backbone(tmp_path)(x), backbone(x))
    assert byol.load_preprocess(tmp_path).size == 8
