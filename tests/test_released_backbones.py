"""The backbones committed under checkpoints/ load strictly and match their recorded hashes and metrics."""

import hashlib
import json
from pathlib import Path

import torch

import byol
from byol.data import Digits

DEMO = Path(__file__).resolve().parent.parent / "checkpoints" / "demo"


def test_demo_backbone_loads_and_matches_its_config():
    config = json.loads((DEMO / "config.json").read_text())
    assert hashlib.sha256((DEMO / "model.safetensors").read_bytes()).hexdigest() == config["sha256"]
    assert config["metrics"] == json.loads((DEMO / "metrics.json").read_text())

    backbone, preprocess = byol.load_backbone(DEMO), byol.load_preprocess(DEMO)
    images, _ = next(iter(torch.utils.data.DataLoader(Digits(split="test", size=16), batch_size=8)))
    with torch.no_grad():
        features = backbone(preprocess(images))
    assert features.shape == (8, config["num_features"]) and torch.isfinite(features).all()
    assert not backbone.training
