"""``byol import``: synthetic checkpoints in the released formats (BYOL-A, I-JEPA, DINO, timm) round-trip exactly.

Each test writes a checkpoint with the key names of the released files, spelled out here independently of
:mod:`byol.weights_import`, imports it, and compares the imported backbone's features with the source model's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import timm
import torch
from safetensors.torch import save_file

import byol
from byol.cli import main
from byol.models.audio_ntt import AudioNTT2020, AudioNTT2022
from byol.weights_import import import_weights

VIT = dict(img_size=32, patch_size=8, embed_dim=192, depth=2, num_heads=3, num_classes=0)  # ViT-Ti/8 at 32 px


def run_byol(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "byol.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "BYOL_DEBUG": ""})


def byola_state(d: int, v2: bool = False) -> dict[str, torch.Tensor]:
    """Key names and shapes of ``AudioNTT2020-BYOLA-64x96d{d}.pth`` (or ``AudioNTT2022-BYOLA-64x96d2048.pth``):
    conv at ``features.{0,4,8}`` (v2: ``{0,4}``), each followed by its BatchNorm; ``fc.0`` and ``fc.3``."""
    g = torch.Generator().manual_seed(d)
    convs, (fc0, fc3) = ([0, 4], [(2048, 1024), (2048, 2048)]) if v2 else ([0, 4, 8], [(d, 512), (d, d)])
    state = {}
    for n, i in enumerate(convs):
        state[f"features.{i}.weight"] = torch.randn(64, 1 if n == 0 else 64, 3, 3, generator=g) * 0.1
        state[f"features.{i}.bias"] = torch.randn(64, generator=g) * 0.1
        state[f"features.{i + 1}.weight"] = torch.rand(64, generator=g) + 0.5
        state[f"features.{i + 1}.bias"] = torch.randn(64, generator=g) * 0.1
        state[f"features.{i + 1}.running_mean"] = torch.randn(64, generator=g) * 0.1
        state[f"features.{i + 1}.running_var"] = torch.rand(64, generator=g) + 0.5
        state[f"features.{i + 1}.num_batches_tracked"] = torch.tensor(1000)
    for i, shape in ((0, fc0), (3, fc3)):
        state[f"fc.{i}.weight"] = torch.randn(*shape, generator=g) * 0.02
        state[f"fc.{i}.bias"] = torch.randn(shape[0], generator=g) * 0.02
    return state


def _reference_audio(state: dict[str, torch.Tensor], d: int, v2: bool) -> torch.nn.Module:
    model = AudioNTT2022() if v2 else AudioNTT2020(d=d)
    model.load_state_dict(state)
    return model.eval()


def _same_audio_embeddings(folder, reference: torch.nn.Module) -> None:
    loaded, pre = byol.load_backbone(folder), byol.load_preprocess(folder)
    wave = torch.randn(2, 15200) * 0.1
    with torch.no_grad():
        assert torch.equal(loaded(pre(wave)), reference(pre(wave)))


def test_byola_import_on_the_command_line(tmp_path):
    pth = tmp_path / "AudioNTT2020-BYOLA-64x96d512.pth"
    torch.save(byola_state(512), pth)
    out = run_byol("import", str(pth), str(tmp_path / "out"), "--mean", "-5.0", "--std", "4.0", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["preprocessing"]["mean"] == -5.0 and config["preprocessing"]["std"] == 4.0
    assert config["backbone"]["class"] == "AudioNTT2020" and config["imported_from"]["format"] == "byola"
    _same_audio_embeddings(tmp_path / "out", _reference_audio(byola_state(512), 512, v2=False))


@pytest.mark.parametrize("d, v2", [(1024, False), (2048, False), (3072, True)])
def test_every_released_byola_size_imports(tmp_path, d, v2):
    pth = tmp_path / "weights.pth"
    torch.save(byola_state(d, v2), pth)
    import_weights(str(pth), tmp_path / "out", mean=-5.0, std=4.0)
    _same_audio_embeddings(tmp_path / "out", _reference_audio(byola_state(d, v2), d, v2))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_features"] == d


def test_byola_statistics_from_an_audio_folder_or_a_clear_error(tmp_path):
    pth = tmp_path / "weights.pth"
    torch.save(byola_state(512), pth)
    with pytest.raises(ValueError, match="--stats_from"):
        import_weights(str(pth), tmp_path / "out")
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(audio / f"{i}.wav", (0.1 * (i + 1) * rng.standard_normal(15200)).astype(np.float32), 16000)
    import_weights(str(pth), tmp_path / "out", stats_from=audio)
    pre = byol.load_preprocess(tmp_path / "out")
    logmels = torch.cat([pre.front_end(torch.from_numpy(sf.read(audio / f"{i}.wav", dtype="float32")[0])[None])
                         .flatten() for i in range(2)])
    assert pre.mean == pytest.approx(logmels.double().mean().item(), rel=1e-4)  # clips of one 0.95 s segment
    assert pre.std == pytest.approx(logmels.double().std().item(), rel=1e-3)


def _ijepa_names(depth: int) -> list[str]:
    """The parameter names of I-JEPA's VisionTransformer (src/models/vision_transformer.py): no class token."""
    names = ["pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"]
    for i in range(depth):
        for layer in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            names += [f"blocks.{i}.{layer}.weight", f"blocks.{i}.{layer}.bias"]
    return names


def _vit(seed: int, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model("vit_tiny_patch16_224", **VIT, **kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.rand_like(p) * 0.05)
    return model


def test_ijepa_checkpoint_imports_its_target_encoder(tmp_path):
    source = _vit(0, class_token=False, global_pool="avg", fc_norm=False)
    other = _vit(1, class_token=False, global_pool="avg", fc_norm=False)
    names = _ijepa_names(VIT["depth"])
    assert sorted(names) == sorted(source.state_dict())  # timm's layout covers I-JEPA's names one to one
    checkpoint = {
        "encoder": {f"module.{n}": other.state_dict()[n] for n in names},
        "target_encoder": {f"module.{n}": source.state_dict()[n] for n in names},
        "predictor": {"module.predictor_embed.weight": torch.randn(96, 192),
                      "module.mask_token": torch.zeros(1, 1, 96)},
        "opt": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}, "scaler": None,
        "epoch": 300, "loss": 0.1, "batch_size": 128, "world_size": 16, "lr": 1e-3,
    }
    pth = tmp_path / "IN1K-vit.ti.8-300e.pth.tar"
    torch.save(checkpoint, pth)
    out = import_weights(str(pth), tmp_path / "out")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = source.forward_features(x).mean(dim=1)  # I-JEPA's features: final norm, mean over patches
        assert torch.equal(byol.load_backbone(out)(x), expected)
        assert torch.equal(timm.create_model(f"local-dir:{out}", pretrained=True).eval()(x), expected)
    config = json.loads((out / "config.json").read_text())
    assert config["imported_from"] == {"format": "ijepa", "file": str(pth), "encoder": "target_encoder"}
    assert config["preprocessing"]["size"] == 32 and config["method"] == "I-JEPA"

    del checkpoint["target_encoder"]["module.norm.bias"]
    torch.save(checkpoint, pth)
    with pytest.raises(RuntimeError, match=r"IN1K-vit.ti.8-300e.pth.tar[\s\S]*missing keys \(1\): norm.bias"):
        import_weights(str(pth), tmp_path / "again")


def _dino_names(depth: int) -> list[str]:
    """The parameter names of DINO's vision_transformer.py backbone: a class token before the patch tokens."""
    return ["cls_token", *_ijepa_names(depth)]


@pytest.mark.parametrize("layout", ["full checkpoint", "backbone only"])
def test_dino_checkpoint_imports_its_teacher(tmp_path, layout):
    teacher, student = _vit(0), _vit(1)
    names = _dino_names(VIT["depth"])
    assert sorted(names) == sorted(teacher.state_dict())
    head = {"head.mlp.0.weight": torch.randn(64, 192), "head.last_layer.weight_g": torch.ones(256, 1)}
    if layout == "full checkpoint":
        checkpoint = {
            "teacher": {**{f"backbone.{n}": teacher.state_dict()[n] for n in names}, **head},
            "student": {f"module.{k}": v for k, v in
                        {**{f"backbone.{n}": student.state_dict()[n] for n in names}, **head}.items()},
            "optimizer": {"state": {}, "param_groups": []}, "epoch": 100, "dino_loss": {"center": torch.zeros(1, 256)},
            "args": argparse.Namespace(arch="vit_tiny", patch_size=8, out_dim=256),
        }
    else:  # e.g. dino_deitsmall16_pretrain.pth
        checkpoint = {n: teacher.state_dict()[n] for n in names}
    pth = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, pth)
    out = import_weights(str(pth), tmp_path / "out")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = teacher.forward_features(x)[:, 0]  # DINO's features: the class token after the final norm
        assert torch.equal(byol.load_backbone(out)(x), expected)
        if layout == "full checkpoint":
            student_out = import_weights(str(pth), tmp_path / "student", encoder="student")
            assert torch.equal(byol.load_backbone(student_out)(x), student.forward_features(x)[:, 0])
    assert json.loads((out / "config.json").read_text())["method"] == "DINO"


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_model_with_local_weights(tmp_path, suffix):
    torch.manual_seed(0)
    source = timm.create_model("resnet10t").eval()  # 1000 classes: the head in the file is dropped
    weights = tmp_path / f"resnet10t{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), weights)
        out = import_weights("timm:resnet10t", tmp_path / "out", weights=weights)
        pre = byol.load_preprocess(out)  # the model's pretrained_cfg
        assert pre.size == source.pretrained_cfg["input_size"][-1]
        assert torch.allclose(pre.mean.flatten(), torch.tensor(source.pretrained_cfg["mean"]))
    else:  # a training script's checkpoint, the user's preprocessing
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, weights)
        out = import_weights("timm:resnet10t", tmp_path / "out", weights=weights, size=32, mean=0.5, std=[0.2] * 3)
        config = json.loads((out / "config.json").read_text())
        assert config["preprocessing"] == {"class": "ImagePreprocess", "size": 32, "mean": [0.5] * 3,
                                           "std": [pytest.approx(0.2)] * 3}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = source.forward_head(source.forward_features(x), pre_logits=True)
        assert torch.equal(byol.load_backbone(out)(x), expected)


def test_a_wrong_file_is_one_line_that_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BYOL_DEBUG", raising=False)
    junk = tmp_path / "not_released.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, junk)
    with pytest.raises(SystemExit) as exit_:
        main(["import", str(junk), str(tmp_path / "out")])  # the byol command, in this process
    assert exit_.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("byol: error: ") and str(junk) in line and "--format" in line and "timm:NAME" in line
    assert not (tmp_path / "out").exists()

    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(ValueError, match=f"{text} is not a readable torch file"):
        import_weights(str(text), tmp_path / "out")


def test_imported_byola_weights_go_straight_into_the_audio_protocol(tmp_path, capsys):
    """Released BYOL-A weights (synthetic, the real key names and shapes) -> ``byol import`` -> ``byol eval audio``
    on an FSDD-like folder, end to end; the record names the imported weights' hash."""
    import numpy as np
    import soundfile

    from byol.cli import main
    from byol.eval.results import read_records

    root = tmp_path / "fsdd"  # {digit}_{speaker}_{index}.wav: indices 0-4 test, 5-49 train; tones by digit
    root.mkdir()
    t = np.arange(4800) / 8000
    for digit in (0, 1):
        for speaker in ("alice", "bob"):
            for index in (0, 1, 5, 6, 7):
                wave = 0.3 * np.sin(2 * np.pi * (300 + 200 * digit) * t) + 0.01 * index
                soundfile.write(root / f"{digit}_{speaker}_{index}.wav", wave.astype(np.float32), 8000)
    pth = tmp_path / "AudioNTT2020-BYOLA-64x96d512.pth"
    torch.save(byola_state(512), pth)
    main(["import", str(pth), str(tmp_path / "byola"), "--mean", "-5.0", "--std", "4.0"])
    main(["eval", "audio", str(tmp_path / "byola"), "--data.root", str(root), "--data.segment_seconds", "0.25",
          "--repeats", "1", "--batch_size", "8", "--device", "cpu"])
    assert "conventional split" in capsys.readouterr().out
    (record,) = read_records(tmp_path / "byola")
    config = json.loads((tmp_path / "byola" / "config.json").read_text())
    assert record["protocol"] == "audio/fsdd" and config["sha256"].startswith(record["backbone"]["sha256"])
    assert 0 <= record["summary"]["conventional backbone"] <= 100
