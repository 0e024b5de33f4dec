"""layer_tokens: the top blocks' outputs on the whole input, before the final norm, prefix apart."""

import pytest
import torch
import torch.nn.functional as F

from byol.models import TabularTransformer, TimmBackbone

TINY = {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 3, "num_heads": 2}  # a 4 x 4 patch grid


def vit(**kwargs) -> TimmBackbone:
    torch.manual_seed(0)
    return TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs={**TINY, **kwargs}).eval()


def images(b: int = 2) -> torch.Tensor:
    return torch.randn(b, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def vit_blocks_by_hand(model: TimmBackbone, x: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output ``(B, P + 16, d)``: 4x4 patches unfolded and projected (the conv as a matmul), the CLS
    and register tokens prepended, the position embedding added (timm's layout when the prefix has one), then
    each block in turn."""
    m = model.model
    patches = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, 16, 16), row-major grid
    patches = patches @ m.patch_embed.proj.weight.flatten(1).T + m.patch_embed.proj.bias
    prefix = [t.expand(len(x), -1, -1) for t in (m.cls_token, m.reg_token) if t is not None]
    h = torch.cat([*prefix, patches], dim=1) + m.pos_embed
    outs = []
    for block in m.blocks:
        h = block(h)
        outs.append(h)
    return outs


@pytest.mark.parametrize("kwargs, prefix", [({}, 1), ({"reg_tokens": 2}, 3)], ids=["cls", "cls-registers"])
def test_vit_layer_tokens_are_the_blocks_run_by_hand(kwargs, prefix):
    model, x = vit(**kwargs), images()
    assert model.num_prefix_tokens == prefix
    out = model.layer_tokens(x, 3)
    expected = vit_blocks_by_hand(model, x)
    assert len(out) == 3
    for got, want in zip(out, expected):
        assert got.prefix.shape == (2, prefix, 16) and got.patches.shape == (2, 16, 16)
        torch.testing.assert_close(got.sequence, want)
    # the top blocks only, in block order
    top = model.layer_tokens(x, 2)
    assert len(top) == 2
    for got, want in zip(top, expected[1:]):
        torch.testing.assert_close(got.sequence, want)
    # before the final norm: the last block through it is the token interface's output
    full = model.tokens(x)
    torch.testing.assert_close(model.model.norm(out[-1].prefix), full.prefix)
    torch.testing.assert_close(model.model.norm(out[-1].patches), full.patches)


@pytest.mark.parametrize("layers", [0, 4, -1])
def test_vit_layers_outside_one_to_depth_raise(layers):
    with pytest.raises(ValueError, match=r"layers.*depth = 3.*" + str(layers)):
        vit().layer_tokens(images(), layers)


def tabular() -> tuple[TabularTransformer, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    enc = TabularTransformer(3, [4, 2], dim=8, depth=3, heads=2, ffn_dim=16, num_reg_tokens=2)
    x = {"num": torch.randn(5, 3), "cat": torch.randint(0, 4, (5, 2)) % torch.tensor([4, 2])}
    return enc, x


def tabular_blocks_by_hand(enc: TabularTransformer, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    features = enc.tokenizer(x["num"], x["cat"]) + enc.feature_index
    h = torch.cat([enc.reg_tokens.expand(len(features), -1, -1), features], dim=1)
    outs = []
    for i in range(3):
        h = enc.blocks.layers[i](h)
        outs.append(h)
    return outs


@pytest.mark.parametrize("mode", ["train", "eval", "eval-no-grad"])
def test_tabular_layer_tokens_are_the_blocks_run_by_hand(mode):
    enc, x = tabular()
    enc.train(mode == "train")  # dropout 0: train and eval compute the same function
    with torch.set_grad_enabled(mode != "eval-no-grad"):  # eval without grad: PyTorch's fused encoder-layer path
        out = enc.layer_tokens(x, 3)
        expected = tabular_blocks_by_hand(enc, x)
        full = enc.tokens(x)
        assert len(out) == 3
        for got, want in zip(out, expected):
            assert got.prefix.shape == (5, 2, 8) and got.patches.shape == (5, 5, 8)
            torch.testing.assert_close(got.sequence, want)
        torch.testing.assert_close(enc.norm(out[-1].sequence), full.sequence)
        for got, want in zip(enc.layer_tokens(x, 1), expected[-1:]):
            torch.testing.assert_close(got.sequence, want)


def test_tabular_layers_outside_one_to_depth_raise():
    enc, x = tabular()
    for layers in (0, 4):
        with pytest.raises(ValueError, match=r"layers.*depth = 3"):
            enc.layer_tokens(x, layers)
