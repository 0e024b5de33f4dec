"""Fixtures of the audio tests: the FSDD folder (skipped when absent) and the audio classes in the export registry."""

from __future__ import annotations

from pathlib import Path

import pytest

import byol.models
import byol.views
from byol.models.audio_ntt import AudioNTT2020, AudioNTT2022
from byol.views.audio import LogMelPreprocess

FSDD_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd"


@pytest.fixture
def fsdd_root() -> Path:
    """``../shared/data/fsdd`` relative to the project root; the test is skipped when it is missing."""
    if not (FSDD_ROOT / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD_ROOT} (see ../shared/data/README.md)")
    return FSDD_ROOT


@pytest.fixture
def audio_exports(monkeypatch):
    """``byol.load_backbone`` finds classes by name in ``byol.models`` / ``byol.views``; make sure the audio ones
    are there (a no-op once those packages re-export them)."""
    monkeypatch.setattr(byol.models, "AudioNTT2020", AudioNTT2020, raising=False)
    monkeypatch.setattr(byol.models, "AudioNTT2022", AudioNTT2022, raising=False)
    monkeypatch.setattr(byol.views, "LogMelPreprocess", LogMelPreprocess, raising=False)
