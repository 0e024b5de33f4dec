"""AudioNTT2020 / AudioNTT2022: output sizes, the papers' weight layout, strict loading, export round trip."""

from __future__ import annotations

import pytest
import torch
from audio_formats import V1_512, V2_3072, paper_state

import byol
from byol.export import export_backbone
from byol.models.audio_ntt import AudioNTT2020, AudioNTT2022, from_paper_state_dict
from byol.views.audio_frontend import LogMelPreprocess


@pytest.mark.parametrize("d", [512, 1024, 2048])
def test_audio_ntt2020_output_dims(d):
    model = AudioNTT2020(n_mels=64, d=d).eval()
    assert model.num_features == d
    assert model(torch.randn(2, 1, 64, 96)).shape == (2, d)
    assert model(torch.randn(1, 1, 64, 40)).shape == (1, d)  # any length of at least 8 frames


def test_audio_ntt2022_concatenates_conv_and_mlp_features_to_3072():
    model = AudioNTT2022().eval()
    x = torch.randn(2, 1, 64, 96)
    frames = model.frame_embeddings(x)
    assert model.num_features == 3072 and frames.shape == (2, 24, 3072)
    torch.testing.assert_close(frames[..., :1024], model.conv_frames(x))
    torch.testing.assert_close(model(x), frames.max(1).values + frames.mean(1))


def test_frame_features_are_frequency_major_as_in_the_papers_code():
    model = AudioNTT2020(channels=8).eval()
    x = torch.randn(1, 1, 64, 96)
    conv = model.features(x)  # (1, C, F', T')
    frames = model.conv_frames(x)  # (1, T', F' * C)
    c, f, t = 3, 5, 7
    assert frames[0, t, f * 8 + c] == conv[0, c, f, t]


@pytest.mark.parametrize("layout,cls,d", [(V1_512, AudioNTT2020, 512), (V2_3072, AudioNTT2022, 3072)])
def test_a_state_dict_with_the_papers_keys_loads_strictly(layout, cls, d):
    state = paper_state(**layout)
    model = cls(d=d)
    model.load_export_state_dict(state)
    assert set(model.export_state_dict()) == set(state)
    built = from_paper_state_dict({f"model.{k}": v for k, v in state.items()})  # prefixes are dropped
    assert type(built) is cls and built.num_features == d
    x = torch.randn(2, 1, 64, 96)
    torch.testing.assert_close(built.eval()(x), model.eval()(x))


def test_a_key_that_does_not_match_is_reported():
    state = paper_state(**V1_512)
    state["fc.9.weight"] = state.pop("fc.3.weight")
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): fc.3.weight"):
        AudioNTT2020().load_export_state_dict(state)


def test_export_round_trip_of_a_trained_like_encoder(tmp_path, audio_exports):
    model = AudioNTT2020(d=64, channels=8)
    with torch.no_grad():
        for t in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            t.add_(torch.rand_like(t) * 0.1)
    export_backbone(model.eval(), tmp_path, LogMelPreprocess(mean=-1.0, std=3.0).export_config())
    loaded = byol.load_backbone(tmp_path)
    x = torch.randn(2, 1, 64, 96)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.export_config() == model.export_config()
