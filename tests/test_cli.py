"""The command line: clear errors for wrong config keys, wrong types and bad data; --print_config works."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "configs" / "byol_digits.yaml"


def byol(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "byol.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_print_config_lists_every_constructor_argument(tmp_path):
    out = byol("fit", "-c", str(DIGITS), "--print_config", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    model = config["model"]["init_args"]
    for key in ("backbone", "views", "projector_hidden_dim", "projection_dim", "predictor_hidden_dim",
                "optimizer", "tau_schedule", "warmup_epochs", "num_classes", "probe_lr", "channels_last"):
        assert key in model, key
    assert model["views"]["init_args"]["size"] == 16
    assert model["tau_schedule"]["init_args"]["base"] == 0.99


def test_unknown_config_key_is_named(tmp_path):
    out = byol("fit", "-c", str(DIGITS), "--model.init_args.projektor_dim", "64", cwd=tmp_path)
    assert out.returncode != 0
    assert "projektor_dim" in out.stderr


def test_unknown_key_in_yaml_file_is_named(tmp_path):
    config = yaml.safe_load(DIGITS.read_text())
    config["model"]["init_args"]["warmup_epoch"] = 3  # typo of warmup_epochs
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = byol("fit", "-c", str(bad), cwd=tmp_path)
    assert out.returncode != 0
    assert "warmup_epoch" in out.stderr


def test_wrong_type_is_named(tmp_path):
    out = byol("fit", "-c", str(DIGITS), "--model.init_args.projection_dim", "many", cwd=tmp_path)
    assert out.returncode != 0
    assert "projection_dim" in out.stderr and "many" in out.stderr


@pytest.mark.parametrize("make_folder", ["empty", "corrupt"])
def test_bad_image_folder_is_a_clear_error(tmp_path, make_folder):
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    if make_folder == "corrupt":
        (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    config = yaml.safe_load(DIGITS.read_text())
    config["data"]["init_args"]["train"] = {
        "class_path": "byol.data.ImageFolder", "init_args": {"root": str(root), "size": 16, "grayscale": True},
    }
    config["data"]["init_args"]["batch_size"] = 1
    config["trainer"]["logger"] = False
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump(config))
    out = byol("fit", "-c", str(path), "--trainer.fast_dev_run", "1", cwd=tmp_path)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("byol: error: ") and last.endswith("(BYOL_DEBUG=1 shows the traceback)")
    if make_folder == "empty":  # raised while the config is instantiated: not buried in a union-validation error
        assert "no images" in last.lower() and str(root) in last
        assert "Union" not in out.stderr and "Traceback" not in out.stderr
    else:  # raised in the loader: names the file and the way out
        assert "broken.jpg" in last and "on_corrupt: skip" in last


def test_debug_variable_shows_the_whole_traceback(tmp_path):
    out = byol("export", str(tmp_path / "missing.ckpt"), str(tmp_path / "out"), cwd=tmp_path,
               env={"BYOL_DEBUG": "1"})
    assert out.returncode == 1 and "Traceback (most recent call last)" in out.stderr
    assert "byol: error" not in out.stderr


def test_random_bytes_and_a_code_running_pickle_end_in_different_lines(tmp_path):
    import pickle

    noise, evil = tmp_path / "noise.ckpt", tmp_path / "evil.ckpt"
    noise.write_bytes(bytes(range(256)) * 16)
    evil.write_bytes(pickle.dumps({"state_dict": {}, "x": _RunsCode()}))
    lines = {}
    for path in (noise, evil):
        out = byol("export", str(path), str(tmp_path / "out"), cwd=tmp_path)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        lines[path] = out.stderr.strip().splitlines()[-1]
    assert lines[noise].startswith(f"byol: error: {noise} is not a readable checkpoint")
    assert lines[evil].startswith(f"byol: error: refusing to load {evil}: unpickling it would call "
                                  f"{os.system.__module__}.system")
    assert not (tmp_path / "out").exists() and not (tmp_path / "pwned").exists()


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_export_and_linear_eval_commands(tmp_path, make_model):
    import lightning as L
    import torch

    from byol.data import DataModule, Digits

    model = make_model()
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, DataModule(Digits(split="train", size=8), batch_size=64, num_workers=0))
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)

    out = byol("export", str(ckpt), str(tmp_path / "exported"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "exported" / "model.safetensors").is_file()

    out = byol("linear-eval", str(tmp_path / "exported"),
               "--train.class_path", "byol.data.Digits", "--train.init_args.split", "train", "--train.init_args.size", "8",
               "--test.class_path", "byol.data.Digits", "--test.init_args.split", "test", "--test.init_args.size", "8",
               "--num_workers", "0", "--weight_decays", "[0.001]", "--device", "cpu", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from byol.eval.results import read_records

    (record,) = read_records(tmp_path / "exported")
    results = record["metrics"]
    assert 10.0 < results["top1"] <= 100.0 and results["weight_decay"] == 0.001
    assert torch.load(ckpt, weights_only=True)["byol"]["method"] == "BYOL"


def test_a_malformed_csv_through_fit_ends_in_a_line_that_names_it(tmp_path):
    (tmp_path / "people.csv").write_text("age,hours,income\n30,40,>50K\n41,38,<=50K,extra,fields\n")
    out = byol("fit", "-c", str(ROOT / "configs" / "tjepa_csv.yaml"), "--data.path", "people.csv",
               "--data.target", "income", "--trainer.fast_dev_run", "1", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("byol: error: cannot read people.csv as a .csv table") and "line 3" in last
