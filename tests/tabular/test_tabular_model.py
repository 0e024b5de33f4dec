"""Feature tokenizer, encoder and predictor against direct computations; [REG] and feature indexing; export."""

import json

import pytest
import torch

import byol.models
from byol.export import export_backbone, load_backbone
from byol.models.tabular import FeatureTokenizer, TabularTransformer, TJEPAPredictor
from byol.models.transformer import sincos_encoding
from byol.models.tokens import gather_tokens

CARDS = [4, 3]


def batch(b: int = 5, num: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, c, (b,), generator=g) for c in CARDS], dim=1)
    return {"num": torch.randn(b, num, generator=g), "cat": cat}


def encoder(**kw) -> TabularTransformer:
    torch.manual_seed(0)
    args = {"dim": 8, "depth": 2, "heads": 2, "ffn_dim": 16, "num_reg_tokens": 2, **kw}
    return TabularTransformer(3, CARDS, **args).eval()


def test_tokenizer_matches_a_direct_computation():
    tok = FeatureTokenizer(3, CARDS, 8)
    with torch.no_grad():
        for p in tok.parameters():
            p.normal_()
    x = batch()
    out = tok(x["num"], x["cat"])
    assert out.shape == (5, 5, 8)
    tables = torch.split(tok.embedding.weight, CARDS)
    for b in range(5):
        for j in range(3):
            torch.testing.assert_close(out[b, j], x["num"][b, j] * tok.weight[j] + tok.bias[j])
        for j in range(2):
            torch.testing.assert_close(out[b, 3 + j], tables[j][x["cat"][b, j]] + tok.bias[3 + j])


def test_unknown_category_starts_as_the_bias_alone():
    tok = FeatureTokenizer(0, CARDS, 8)
    out = tok(torch.zeros(2, 0), torch.zeros(2, 2, dtype=torch.long))
    torch.testing.assert_close(out, tok.bias.expand(2, -1, -1))


def test_missing_numeric_value_uses_the_learned_missing_token_with_finite_gradients():
    tok = FeatureTokenizer(3, [], 8)
    num = torch.randn(4, 3)
    num[1, 2] = float("nan")
    out = tok(num, torch.zeros(4, 0, dtype=torch.long))
    torch.testing.assert_close(out[1, 2], tok.missing[2] + tok.bias[2])
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in (tok.weight, tok.bias, tok.missing))
    assert tok.missing.grad[2].abs().sum() > 0 and tok.missing.grad[0].abs().sum() == 0


def test_tokens_start_with_reg_then_features_and_keep_selects_features_not_reg_tokens():
    enc, x = encoder(), batch()
    out = enc.tokens(x)
    full = out.sequence
    assert out.prefix.shape == (5, 2, 8) and out.patches.shape == (5, 5, 8)
    assert full.shape == (5, 2 + 5, 8) and enc.num_tokens == 7 and enc.num_features == 56
    torch.testing.assert_close(enc.pool(out), enc(x))
    # the transformer is permutation-equivariant: keeping every feature in another order permutes the feature tokens
    perm = torch.stack([torch.randperm(5, generator=torch.Generator().manual_seed(b)) for b in range(5)])
    shuffled = enc.tokens(x, keep=perm).sequence
    torch.testing.assert_close(shuffled[:, :2], full[:, :2], atol=1e-5, rtol=1e-5)  # [REG] outputs unchanged
    torch.testing.assert_close(shuffled[:, 2:], gather_tokens(full[:, 2:], perm), atol=1e-5, rtol=1e-5)
    for b in range(5):
        torch.testing.assert_close(shuffled[b, 2:], full[b, 2 + perm[b]], atol=1e-5, rtol=1e-5)


def test_context_encoder_sees_only_the_kept_features():
    enc, x = encoder(), batch()
    keep = torch.tensor([[0, 3]] * 5)
    out = enc.tokens(x, keep=keep).sequence
    changed = {"num": x["num"].clone(), "cat": x["cat"].clone()}
    changed["num"][:, 1:] += 10.0  # features 1 and 2: not kept
    changed["cat"][:, 1] = (changed["cat"][:, 1] + 1) % 3  # feature 4: not kept
    torch.testing.assert_close(enc.tokens(changed, keep=keep).sequence, out)
    changed["num"][:, 0] += 1.0  # feature 0: kept
    assert not torch.allclose(enc.tokens(changed, keep=keep).sequence, out)


def test_every_feature_reaches_every_output_token_of_the_full_row():
    enc, x = encoder(), batch(1)
    num = x["num"].clone().requires_grad_(True)
    out = enc.tokens({"num": num, "cat": x["cat"]}).sequence
    w = torch.randn(out.shape[-1])  # a plain sum of a LayerNorm output would be constant
    for t in range(out.shape[1]):
        (g,) = torch.autograd.grad((out[0, t] * w).sum(), num, retain_graph=True)
        assert (g.abs() > 0).all(), f"token {t} does not depend on every numeric feature"


def test_gather_tokens_picks_rows_independently():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    index = torch.tensor([[[3, 1]], [[0, 0]]])
    out = gather_tokens(tokens, index)
    assert out.shape == (2, 1, 2, 3)
    assert torch.equal(out[0, 0, 0], tokens[0, 3]) and torch.equal(out[1, 0, 1], tokens[1, 0])


def test_sincos_encoding_layout():
    enc = sincos_encoding(5, 6)
    assert enc.shape == (5, 6)
    torch.testing.assert_close(enc[:, 0], torch.sin(torch.arange(5.0)))
    torch.testing.assert_close(enc[:, 3], torch.cos(torch.arange(5.0)))
    with pytest.raises(ValueError, match="even width"):
        sincos_encoding(3, 5)


def test_predictor_output_shape_and_independence_of_target_sets():
    torch.manual_seed(0)
    pred = TJEPAPredictor(grid=5, encoder_dim=8, num_prefix_tokens=2, dim=4, depth=1, heads=2, ffn_dim=8).eval()
    context = torch.randn(3, 2 + 2, 8)
    context_index = torch.tensor([[0, 1]] * 3)
    targets = torch.tensor([[[2, 3], [4, 2]]] * 3)
    out = pred(context, context_index, targets)
    assert out.shape == (3, 2, 2, 8)
    alone = pred(context, context_index, targets[:, 1:])
    torch.testing.assert_close(alone[:, 0], out[:, 1], atol=1e-6, rtol=1e-6)


def test_export_config_rebuilds_the_architecture_and_weights_load_strictly():
    enc = encoder()
    config = json.loads(json.dumps(enc.export_config()))
    assert config.pop("class") == "TabularTransformer" and config.pop("num_features") == 56
    rebuilt = TabularTransformer(**config).eval()
    rebuilt.load_export_state_dict(enc.export_state_dict())
    x = batch()
    torch.testing.assert_close(rebuilt(x), enc(x), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="missing keys"):
        rebuilt.load_export_state_dict({k: v for k, v in enc.export_state_dict().items() if "reg_tokens" not in k})


@pytest.mark.skipif(not hasattr(byol.models, "TabularTransformer"),
                    reason="byol.models does not re-export TabularTransformer yet")
def test_exported_folder_loads_with_byol_load_backbone(tmp_path):
    enc = encoder()
    export_backbone(enc, tmp_path, {"class": "TabularPreprocessing"}, method="TJEPA")
    loaded = load_backbone(tmp_path)
    x = batch()
    torch.testing.assert_close(loaded(x), enc(x), rtol=0, atol=0)
