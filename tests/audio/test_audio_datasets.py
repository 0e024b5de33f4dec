"""Audio datasets: decoding, mono mix-down, resampling, fixed-length segments, labels, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from audio_formats import write_audio_folder

from byol.data.audio import FSDD, AudioFolder, AudioManifest, fit_length, read_audio


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def test_an_8khz_file_is_resampled_to_16khz(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(1000, 0.5, 8000), 8000, subtype="FLOAT")
    wave = read_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.shape == (8000,)
    spectrum = torch.fft.rfft(wave[1000:-1000] * torch.hann_window(6000))
    peak_hz = spectrum.abs().argmax().item() * 16000 / 6000
    assert abs(peak_hz - 1000) < 16000 / 6000
    assert wave[1000:-1000].abs().max().item() == pytest.approx(0.5, abs=0.01)  # amplitude kept


def test_stereo_is_mixed_down_to_mono(tmp_path):
    left, right = _tone(440, 0.2, 16000), -0.5 * _tone(440, 0.2, 16000)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    torch.testing.assert_close(read_audio(tmp_path / "stereo.wav", 16000), torch.from_numpy((left + right) / 2))


def test_flac_and_ogg_are_read(tmp_path):
    for name in ("a.flac", "a.ogg"):
        sf.write(tmp_path / name, _tone(440, 0.2, 16000), 16000)
        assert read_audio(tmp_path / name, 16000).shape == (3200,)


def test_silent_and_clipped_files_load_with_a_warning_naming_them(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(1600, np.float32), 16000)
    with pytest.warns(UserWarning, match="silent.wav.*silent"):
        assert read_audio(tmp_path / "silent.wav", 16000).abs().max() == 0
    sf.write(tmp_path / "clipped.wav", np.clip(_tone(440, 0.2, 16000, amp=3.0), -1, 1), 16000, subtype="FLOAT")
    with pytest.warns(UserWarning, match="clipped.wav.*clipped"):
        read_audio(tmp_path / "clipped.wav", 16000)


@pytest.mark.parametrize("case", ["corrupt", "empty", "nan", "missing"])
def test_unreadable_files_raise_an_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(range(200)))
    elif case == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif case == "nan":
        sf.write(path, np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT")
    error = FileNotFoundError if case == "missing" else ValueError
    with pytest.raises(error, match=f"{case}.wav"):
        read_audio(path, 16000)


def test_a_clip_shorter_than_a_segment_is_zero_padded_on_both_sides():
    out = fit_length(torch.ones(5), 10, "random")
    assert out.tolist() == [0, 0] + [1] * 5 + [0] * 3


def test_long_clips_are_cropped_at_random_for_training_and_centred_for_evaluation():
    wave = torch.arange(100.0)
    assert fit_length(wave, 10, "center").tolist() == list(range(45, 55))
    torch.manual_seed(0)
    starts = {int(fit_length(wave, 10, "random")[0]) for _ in range(50)}
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= 90


def test_fsdd_splits_labels_and_segments_on_tiny_copy(tmp_path):
    root = write_audio_folder(tmp_path / "recordings")
    train, test = FSDD(tmp_path, "train"), FSDD(root, "test", crop="center")
    assert len(train) == 8 and len(test) == 4
    assert sorted(set(train.targets)) == [0, 1] and train.classes == [str(d) for d in range(10)]
    wave, label = test[0]
    assert wave.shape == (15200,) and wave.dtype == torch.float32 and label == int(test.files[0].name[0])
    assert len(FSDD(root, "all", exclude_speakers=["bob"])) == 6 and set(FSDD(root, "all", speakers=["bob"]).speakers_of) == {"bob"}


def test_fsdd_conventional_split_on_the_real_data(fsdd_root):
    train, test = FSDD(fsdd_root, "train"), FSDD(fsdd_root, "test", crop="center")
    assert (len(train), len(test)) == (2700, 300)
    assert len(set(train.speakers_of)) == 6 and sorted(set(test.targets)) == list(range(10))
    assert set(test.recording_index) == set(range(5)) and min(train.recording_index) == 5
    wave, label = test[0]
    assert wave.shape == (15200,) and label == int(test.files[0].name.split("_")[0])


def test_audio_folder_labels_come_from_subfolders(tmp_path):
    for rel in ("dog/a.wav", "cat/b.flac", "cat/deep/c.wav", "loose.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / rel, _tone(440, 0.1, 16000), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    ds = AudioFolder(tmp_path, crop="center")
    assert ds.classes == ["cat", "dog"]
    assert dict(zip((p.relative_to(tmp_path).as_posix() for p in ds.files), ds.targets)) == {
        "cat/b.flac": 0, "cat/deep/c.wav": 0, "dog/a.wav": 1, "loose.wav": -1,
    }
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        AudioFolder(tmp_path / "empty")


def test_manifest_with_header_relative_paths_and_optional_labels(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav"):
        sf.write(tmp_path / name, _tone(440, 0.1, 16000), 16000)
    (tmp_path / "list.csv").write_text(f"path,label\na.wav,10\n{tmp_path / 'b.wav'},2\nc.wav\n")
    ds = AudioManifest(tmp_path / "list.csv", segment_seconds=0.5)
    assert ds.classes == ["2", "10"] and ds.targets == [1, 0, -1]
    assert ds[2][0].shape == (8000,) and ds[2][1] == -1
    (tmp_path / "bad.csv").write_text("a.wav,1,extra\n")
    with pytest.raises(ValueError, match="bad.csv: row 1"):
        AudioManifest(tmp_path / "bad.csv")
