"""The token interface of encoders: pooled tokens are the features, keep and mask act on exactly those positions."""

import pytest
import torch
import torch.nn.functional as F

from byol.models import TabularTransformer, TimmBackbone
from byol.models.tokens import Tokens

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 2, "num_heads": 2}  # a 4 x 4 patch grid


def vit(**kwargs) -> TimmBackbone:
    torch.manual_seed(0)
    return TimmBackbone("vit_tiny_patch16_224", model_kwargs={**TINY, **kwargs}).eval()


def images(b: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "kwargs, prefix",
    [({}, 1),  # CLS token, pooled by the CLS output
     ({"reg_tokens": 2, "class_token": False, "global_pool": "avg"}, 2),  # registers, mean of the patches
     ({"reg_tokens": 1, "no_embed_class": True}, 2),  # CLS + register, position embeddings on patches only
     ({"dynamic_img_size": True}, 1)],
    ids=["cls", "registers-avg", "no-embed-class", "dynamic-size"],
)
def test_pooled_tokens_are_the_features_and_prefix_tokens_come_apart(kwargs, prefix):
    model, x = vit(**kwargs), images()
    out = model.tokens(x)
    assert model.num_prefix_tokens == prefix
    assert out.prefix.shape == (3, prefix, 24) and out.patches.shape == (3, 16, 24)
    torch.testing.assert_close(model.pool(out), model(x))
    torch.testing.assert_close(out.sequence, model.model.forward_features(x))


def test_dynamic_size_tokens_follow_the_image_size():
    model = vit(dynamic_img_size=True)
    assert model.grid_size(48, 64) == (6, 8)
    assert model.tokens(images(2, 48)[..., :48]).patches.shape == (2, 36, 24)


def embedded_patches(model: TimmBackbone, x: torch.Tensor) -> torch.Tensor:
    """The patch embedding and position embedding computed by hand: unfold 8x8 patches, the conv as a matmul."""
    proj = model.model.patch_embed.proj
    patches = F.unfold(x, kernel_size=8, stride=8).transpose(1, 2)  # (B, 16, 3 * 64), row-major grid
    return patches @ proj.weight.flatten(1).T + proj.bias + model.model.pos_embed[:, 1:]


def test_keep_selects_exactly_those_patches():
    model, x = vit(depth=0), images()  # no blocks: each output is the final norm of its own embedding
    keep = torch.tensor([[5, 0, 15], [1, 2, 3], [15, 14, 7]])
    out = model.tokens(x, keep=keep)
    expected = model.model.norm(torch.stack([embedded_patches(model, x)[b, keep[b]] for b in range(3)]))
    torch.testing.assert_close(out.patches, expected)
    cls = model.model.norm(model.model.cls_token + model.model.pos_embed[:, :1]).expand(3, -1, -1)
    torch.testing.assert_close(out.prefix, cls)


def test_kept_patches_are_all_the_blocks_see():
    model, x = vit(), images()
    keep = torch.tensor([[0, 3, 9]] * 3)
    changed = x.clone()
    changed[:, :, 8:16, :] += 5.0  # the second patch row (patches 4 .. 7): none kept
    torch.testing.assert_close(model.tokens(changed, keep=keep).patches, model.tokens(x, keep=keep).patches)
    changed[:, :, :8, :8] += 5.0  # patch 0: kept
    assert not torch.allclose(model.tokens(changed, keep=keep).patches, model.tokens(x, keep=keep).patches)


def test_keeping_every_patch_in_another_order_permutes_the_outputs():
    model, x = vit(), images()
    perm = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(b)) for b in range(3)])
    full, shuffled = model.tokens(x), model.tokens(x, keep=perm)
    torch.testing.assert_close(shuffled.prefix, full.prefix, atol=1e-5, rtol=1e-5)
    for b in range(3):
        torch.testing.assert_close(shuffled.patches[b], full.patches[b, perm[b]], atol=1e-5, rtol=1e-5)


def test_masked_patches_are_the_mask_token_at_their_position():
    model, x = vit(depth=0), images()
    token = torch.randn(24)
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[0, [2, 7]] = True
    mask[2, 0] = True
    out = model.tokens(x, mask=mask, mask_token=token)
    embedded = embedded_patches(model, x)
    replaced = torch.where(mask[..., None], token + model.model.pos_embed[:, 1:], embedded)
    torch.testing.assert_close(out.patches, model.model.norm(replaced))
    with pytest.raises(ValueError, match="mask_token"):
        model.tokens(x, mask=mask)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        model.tokens(x, mask=mask[:, :4], mask_token=token)


def test_a_convolutional_network_says_it_has_no_tokens():
    with pytest.raises(TypeError, match="VisionTransformer.*resnet10t"):
        TimmBackbone("resnet10t").tokens(images())


def test_the_tabular_encoder_has_the_same_interface():
    torch.manual_seed(0)
    enc = TabularTransformer(3, [4], dim=8, depth=1, heads=2, ffn_dim=16, num_reg_tokens=2).eval()
    x = {"num": torch.randn(5, 3), "cat": torch.randint(0, 4, (5, 1))}
    out = enc.tokens(x)
    assert isinstance(out, Tokens) and out.prefix.shape == (5, 2, 8) and out.patches.shape == (5, 4, 8)
    torch.testing.assert_close(enc.pool(out), enc(x))
    # a masked feature's token no longer depends on its value
    mask = torch.zeros(5, 4, dtype=torch.bool)
    mask[:, 1] = True
    token = torch.randn(8)
    changed = {"num": x["num"].clone(), "cat": x["cat"]}
    changed["num"][:, 1] += 3.0
    torch.testing.assert_close(enc.tokens(changed, mask=mask, mask_token=token).sequence,
                               enc.tokens(x, mask=mask, mask_token=token).sequence)
