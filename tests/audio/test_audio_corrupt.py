"""Corrupt audio files: ``on_corrupt="raise"`` names the file when it is loaded, ``"skip"`` drops and counts them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_formats import write_audio_folder

from byol.data.audio import FSDD, AudioFolder, AudioManifest


def _wav(path: Path, freq: float = 440.0, seconds: float = 0.3, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def _noise(path: Path, seed: int = 0) -> Path:
    """Random bytes with a ``.wav`` name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return path


def _truncated(path: Path) -> Path:
    """A valid wav cut inside its header (before the ``data`` chunk): libsndfile cannot open it."""
    _wav(path)
    path.write_bytes(path.read_bytes()[:30])
    return path


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    """``a/`` and ``b/`` with two valid clips each, plus random bytes in ``a/`` and a truncated wav in ``b/``."""
    root = tmp_path / "clips"
    for cls, freq in (("a", 300.0), ("b", 900.0)):
        _wav(root / cls / "1.wav", freq)
        _wav(root / cls / "3.wav", freq)
    return root, [_noise(root / "a" / "2_noise.wav"), _truncated(root / "b" / "2_trunc.wav")]


def test_raise_is_the_default_and_loading_a_corrupt_file_names_it(folder):
    root, bad = folder
    clips = AudioFolder(root, sample_rate=8000)
    assert clips.on_corrupt == "raise" and len(clips) == 6 and clips.skipped == []
    for path in bad:
        with pytest.raises(ValueError, match=path.name) as info:
            clips[clips.files.index(path)]
        assert "cannot decode audio" in str(info.value) and "on_corrupt: skip" in str(info.value)
    assert clips[clips.files.index(root / "a" / "1.wav")][0].shape == (clips.segment_samples,)


def test_skip_keeps_only_decodable_clips_with_their_labels_and_reports_the_count(folder):
    root, bad = folder
    with pytest.warns(UserWarning, match="skipped 2 audio file") as record:
        clips = AudioFolder(root, sample_rate=8000, segment_seconds=0.25, on_corrupt="skip")
    message = str(record[0].message)
    assert str(root) in message and "2_noise.wav" in message and "2_trunc.wav" in message
    assert clips.skipped == bad  # in path order
    assert clips.files == [root / "a" / "1.wav", root / "a" / "3.wav", root / "b" / "1.wav", root / "b" / "3.wav"]
    assert clips.targets == [0, 0, 1, 1] and clips.classes == ["a", "b"]
    for i in range(len(clips)):
        wave, label = clips[i]
        assert wave.shape == (2000,) and label == clips.targets[i] and wave.abs().max() > 0.1
    with pytest.warns(UserWarning, match="skipped 2 audio file"):  # deterministic: the same files every time
        again = AudioFolder(root, sample_rate=8000, on_corrupt="skip")
    assert again.files == clips.files and again.skipped == clips.skipped


def test_skip_without_corrupt_files_warns_nothing(tmp_path, recwarn):
    root = write_audio_folder(tmp_path / "recordings")
    clips = AudioFolder(root, on_corrupt="skip")
    assert len(clips) == 12 and clips.skipped == []
    assert not [w for w in recwarn if "skipped" in str(w.message)]


def test_fsdd_skip_drops_the_speaker_and_index_of_a_skipped_clip_too(tmp_path):
    root = write_audio_folder(tmp_path / "recordings")
    _noise(root / "1_bob_5.wav")
    with pytest.warns(UserWarning, match="skipped 1 audio file.*1_bob_5.wav"):
        train = FSDD(tmp_path, "train", on_corrupt="skip")
    assert len(train) == 7 and train.skipped == [root / "1_bob_5.wav"]
    for path, label, speaker, index in zip(train.files, train.targets, train.speakers_of, train.recording_index):
        assert path.name == f"{label}_{speaker}_{index}.wav"
    assert len(FSDD(tmp_path, "test", on_corrupt="skip")) == 4  # the test split has no bad file: no warning


def test_manifest_skip_counts_corrupt_and_missing_files(tmp_path):
    good = [_wav(tmp_path / "dog.wav"), _wav(tmp_path / "cat.wav")]
    _truncated(tmp_path / "cut.wav")
    (tmp_path / "list.csv").write_text("path,label\ndog.wav,dog\ncut.wav,dog\ngone.wav,cat\ncat.wav,cat\n")
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        AudioManifest(tmp_path / "list.csv")[2]
    with pytest.warns(UserWarning, match=r"skipped 2 audio file\(s\) listed in .*list.csv.*cut.wav, gone.wav"):
        clips = AudioManifest(tmp_path / "list.csv", on_corrupt="skip")
    assert clips.files == good and clips.targets == [1, 0] and clips.classes == ["cat", "dog"]
    assert len(clips.skipped) == 2


@pytest.mark.timeout(60)
def test_a_folder_of_only_corrupt_files_is_a_clear_error_not_a_loop(tmp_path):
    for i in range(3):
        _noise(tmp_path / f"{i}.wav", seed=i)
    with pytest.raises(ValueError, match=rf"none of the 3 audio files under {tmp_path} could be decoded"):
        AudioFolder(tmp_path, on_corrupt="skip")
    with pytest.raises(ValueError, match="0.wav"):  # "raise": the first load names the file
        AudioFolder(tmp_path)[0]


def test_a_wav_cut_inside_its_samples_is_read_up_to_the_cut(tmp_path):
    """libsndfile reads the samples that are there; such a file is not skipped (see the module docstring)."""
    path = _wav(tmp_path / "half.wav", seconds=0.5)
    path.write_bytes(path.read_bytes()[: 44 + 2 * 2000])  # header + 2,000 PCM16 samples of 4,000
    clips = AudioFolder(tmp_path, sample_rate=8000, on_corrupt="skip")
    assert clips.skipped == [] and clips.load(0).shape == (2000,)


def test_on_corrupt_must_be_raise_or_skip(tmp_path):
    _wav(tmp_path / "a.wav")
    with pytest.raises(ValueError, match="on_corrupt must be 'raise' or 'skip'"):
        AudioFolder(tmp_path, on_corrupt="ignore")
