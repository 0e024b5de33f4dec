"""A full disk while writing a checkpoint: a clear message with the path, and the previous checkpoint intact."""

import errno
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from byol.cli import error_line
from byol.core.checkpoint_io import SafeCheckpointIO
from byol.core.files import DiskFullError


def _write_full_disk(real_save):
    """A ``torch.save`` whose file runs out of space after 100 bytes, like a real device (``OSError`` ENOSPC
    from the file's write, turned into a ``RuntimeError`` by torch's zip writer)."""

    def save(obj, f, *args, **kwargs):
        class Full:
            written = 0

            def write(self, data):
                if self.written + len(data) > 100:
                    raise OSError(errno.ENOSPC, "No space left on device")
                self.written += len(data)
                return f.write(data)

            def flush(self):
                f.flush()

        real_save(obj, Full(), *args, **kwargs)

    return save


def test_full_disk_names_the_path_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io, path = SafeCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    monkeypatch.setattr(torch, "save", _write_full_disk(torch.save))
    with pytest.raises(DiskFullError) as err:
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert isinstance(err.value.__cause__, RuntimeError)  # what torch raised, kept for BYOL_DEBUG
    line = error_line(err.value)
    assert line.startswith(f"no space left on device while writing {path} (the previous file is intact)")
    assert "--trainer.default_root_dir" in line
    assert io.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # the temporary file is gone


def test_a_crash_mid_write_keeps_the_previous_checkpoint_and_is_not_called_a_full_disk(tmp_path, monkeypatch):
    io, path = SafeCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError) as err:
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert not isinstance(err.value, DiskFullError) and err.value.errno == errno.EIO
    assert io.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 256 KiB tmpfs (needs root and mount(8)); skipped where the host does not allow mounting."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("mount(8) not available")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_tmpfs_gives_the_same_message(tiny_tmpfs: Path):
    io, path = SafeCheckpointIO(), tiny_tmpfs / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)  # 4 kB: fits
    with pytest.raises(DiskFullError, match=f"no space left on device while writing {path}"):
        io.save_checkpoint({"step": 2, "w": torch.ones(200_000)}, path)  # 800 kB: does not
    assert io.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tiny_tmpfs.iterdir()] == ["last.ckpt"]
