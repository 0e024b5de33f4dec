"""SIGTERM / SIGINT end a command with exit code 128 + signal and one line naming the signal and the last checkpoint."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from byol.core.checkpoint_io import read_checkpoint
from byol.core.signals import Interrupted, NoteCheckpointOnInterrupt, exit_on_interrupt

# a tiny BYOL on 8x8 digits that would train for a long time, saving last.ckpt every 2 steps
TINY = {
    "seed_everything": 0,
    "trainer": {
        "accelerator": "cpu", "devices": 1, "max_epochs": 10_000, "limit_train_batches": 4, "logger": False,
        "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "init_args": {"dirpath": "CKPT", "every_n_train_steps": 2, "save_last": True}}],
    },
    "model": {"class_path": "byol.BYOL", "init_args": {
        "backbone": {"class_path": "byol.models.TimmBackbone", "init_args": {
            "name": "resnet10t", "in_chans": 1, "cifar_stem": True,
            "model_kwargs": {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}}},
        "views": {"class_path": "byol.views.GreyImageViews", "init_args": {"size": 8}},
        "projector_hidden_dim": 32, "projection_dim": 16, "predictor_hidden_dim": 32,
        "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05, "momentum": 0.9}},
        "warmup_epochs": 1, "num_classes": 10,
    }},
    "data": {"class_path": "byol.data.DataModule", "init_args": {
        "train": {"class_path": "byol.data.Digits", "init_args": {"split": "train", "size": 8}},
        "batch_size": 16, "num_workers": 0}},
}


def _wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} never appeared (exit code {process.poll()})")
        time.sleep(0.1)


def test_sigterm_during_byol_fit_exits_143_naming_the_last_checkpoint(tmp_path):
    sig = signal.SIGTERM
    ckpt_dir = tmp_path / "ckpt"
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(ckpt_dir)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "byol.cli", "fit", "-c", "tiny.yaml", "--trainer.default_root_dir", str(tmp_path)],
            cwd=tmp_path, stdout=out, stderr=err)
        _wait_for(ckpt_dir / "last.ckpt", process, timeout=60)  # training has started and saved a checkpoint
        process.send_signal(sig)
        code = process.wait(timeout=30)
    stderr = (tmp_path / "err.txt").read_text()
    assert code == 128 + sig, stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(rf"byol: interrupted by {sig.name} \(last checkpoint: (.+\.ckpt)\)", last)
    assert match, last
    path = Path(match[1])
    assert path.parent == ckpt_dir and path.is_file()
    assert read_checkpoint(path)["global_step"] >= 2  # a whole checkpoint, not one cut short
    assert "Traceback" not in stderr


class _SignalAtStep(L.Callback):
    def __init__(self, sig: int, step: int) -> None:
        self.sig, self.step = sig, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.sig)


def test_sigint_during_trainer_fit_exits_130_not_lightnings_1(tmp_path, capsys, make_model, make_data, make_trainer):
    checkpoints = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_last=True)
    callbacks = [checkpoints, _SignalAtStep(signal.SIGINT, 3), NoteCheckpointOnInterrupt()]
    trainer = make_trainer(max_epochs=100, enable_checkpointing=True, callbacks=callbacks)
    with pytest.raises(SystemExit) as info, exit_on_interrupt():
        trainer.fit(make_model(), make_data())
    assert info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"byol: interrupted by SIGINT (last checkpoint: {tmp_path / 'last.ckpt'})"
    assert read_checkpoint(tmp_path / "last.ckpt")["global_step"] == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_outside_a_trainer_the_line_has_no_checkpoint_and_the_handlers_are_restored(capsys, sig):
    before = signal.getsignal(sig)
    with pytest.raises(SystemExit) as info, exit_on_interrupt():
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises before this ends
    assert info.value.code == 128 + sig
    assert capsys.readouterr().err.strip() == f"byol: interrupted by {sig.name}"
    assert signal.getsignal(sig) is before


def test_interrupted_is_not_an_exception_so_except_exception_lets_it_through():
    assert not issubclass(Interrupted, Exception) and not issubclass(Interrupted, KeyboardInterrupt)


def test_a_signal_during_a_checkpoint_write_waits_until_the_file_is_written(tmp_path):
    """SIGTERM that arrives inside ``torch.save`` is delivered after the write: the file is whole and readable."""
    import os

    import torch

    from byol.core.checkpoint_io import SafeCheckpointIO

    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(len(list(tmp_path.iterdir()))))
    try:
        state = {"weights": torch.randn(64, 64)}

        class SignalMidWrite(dict):  # pickled inside torch.save: the signal arrives half-way through the write
            def __reduce__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                assert received == []  # held back
                return dict, (dict(self),)

        SafeCheckpointIO().save_checkpoint({"state": SignalMidWrite(state)}, tmp_path / "last.ckpt")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == [1]  # delivered once, after last.ckpt was in place
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)  # the file is whole (its dict came via __reduce__)
    torch.testing.assert_close(saved["state"]["weights"], state["weights"])
