"""The papers' released weights as an exported backbone folder that byol.load_backbone reads."""

from __future__ import annotations

import torch
from audio_formats import V2_3072, paper_state

import byol
from byol.eval.byola_weights import import_paper_weights
from byol.models.audio_ntt import AudioNTT2022, from_paper_weights
from byol.views.audio_frontend import LogMelPreprocess


def test_released_pth_file_becomes_an_exported_backbone(tmp_path, audio_exports):
    pth = tmp_path / "AudioNTT2022-BYOLA-64x96d2048.pth"
    torch.save(paper_state(**V2_3072), pth)
    model = from_paper_weights(pth)
    assert isinstance(model, AudioNTT2022) and not model.training
    out = import_paper_weights(pth, tmp_path / "exported", mean=-5.0, std=4.0)
    loaded, pre = byol.load_backbone(out), byol.load_preprocess(out)
    assert isinstance(pre, LogMelPreprocess) and (pre.mean, pre.std) == (-5.0, 4.0)
    wave = torch.randn(2, 15200) * 0.1
    torch.testing.assert_close(loaded(pre(wave)), model(pre(wave)), rtol=0, atol=0)
