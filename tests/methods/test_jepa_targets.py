"""JEPA target options against direct computations, and dBOT's staged teacher through the real EMA teacher."""

import pytest
import torch
from torch import nn

from byol.core.teacher import EMATeacher
from byol.methods.jepa_targets import LastLayer, StagedTau, TopLayersAverage
from byol.models import TabularTransformer, TimmBackbone

TINY = {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 3, "num_heads": 2}  # a 4 x 4 patch grid


def vit() -> tuple[TimmBackbone, torch.Tensor]:
    torch.manual_seed(0)
    model = TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs={**TINY, "reg_tokens": 2})
    return model.eval(), torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def tabular() -> tuple[TabularTransformer, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    enc = TabularTransformer(3, [4], dim=8, depth=3, heads=2, ffn_dim=16, num_reg_tokens=2)
    return enc.eval(), {"num": torch.randn(5, 3), "cat": torch.randint(0, 4, (5, 1))}


ENCODERS = {"vit": vit, "tabular": tabular}


def block_patches_by_hand(encoder, x) -> list[torch.Tensor]:
    """Each block's output at the positions ``(B, N, d)``, prefix dropped, before the final norm."""
    if isinstance(encoder, TimmBackbone):
        m = encoder.model
        h = m.norm_pre(m._pos_embed(m.patch_embed(x)))
        blocks, prefix = list(m.blocks), m.num_prefix_tokens
    else:
        features = encoder.tokenizer(x["num"], x["cat"]) + encoder.feature_index
        h = torch.cat([encoder.reg_tokens.expand(len(features), -1, -1), features], dim=1)
        blocks, prefix = list(encoder.blocks.layers), encoder.num_reg_tokens
    outs = []
    for block in blocks:
        h = block(h)
        outs.append(h[:, prefix:])
    return outs


def layer_norm_by_hand(h: torch.Tensor) -> torch.Tensor:
    return (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)


def instance_norm_by_hand(h: torch.Tensor) -> torch.Tensor:
    """Per sample and channel, over the positions (dim 1 of ``(B, N, d)``)."""
    return (h - h.mean(1, keepdim=True)) / torch.sqrt(h.var(1, unbiased=False, keepdim=True) + 1e-5)


@pytest.mark.parametrize("make", ENCODERS.values(), ids=ENCODERS.keys())
def test_last_layer_is_the_layer_normed_output_tokens(make):
    encoder, x = make()
    patches = encoder.tokens(x).patches
    target = LastLayer()(encoder, x)
    assert target.shape == patches.shape and not target.requires_grad
    torch.testing.assert_close(target, layer_norm_by_hand(patches))
    torch.testing.assert_close(LastLayer(layer_norm=False)(encoder, x), patches)
    assert not LastLayer(layer_norm=False)(encoder, x).requires_grad


@pytest.mark.parametrize("make", ENCODERS.values(), ids=ENCODERS.keys())
@pytest.mark.parametrize("layers", [2, 3])
def test_top_layers_average_is_data2vec_2s_target(make, layers):
    encoder, x = make()
    top = block_patches_by_hand(encoder, x)[-layers:]
    expected = layer_norm_by_hand(sum(instance_norm_by_hand(h) for h in top) / layers)
    target = TopLayersAverage(layers)(encoder, x)
    assert target.shape == top[0].shape and not target.requires_grad
    torch.testing.assert_close(target, expected)
    # without the final layer norm: the plain average of the instance-normed blocks
    torch.testing.assert_close(TopLayersAverage(layers, layer_norm=False)(encoder, x),
                               sum(instance_norm_by_hand(h) for h in top) / layers)


@pytest.mark.parametrize("make", ENCODERS.values(), ids=ENCODERS.keys())
def test_one_layer_without_norms_is_the_last_block_before_the_final_norm(make):
    encoder, x = make()
    last = block_patches_by_hand(encoder, x)[-1]
    torch.testing.assert_close(TopLayersAverage(1, instance_norm=False, layer_norm=False)(encoder, x), last)
    assert not torch.allclose(last, encoder.tokens(x).patches)  # the final norm is not applied


def test_instance_norm_statistics_exclude_the_prefix_tokens():
    encoder, x = vit()
    target = TopLayersAverage(3, layer_norm=False)(encoder, x)  # (B, 16, d): the average of zero-mean blocks
    assert target.shape == (2, 16, 16)
    torch.testing.assert_close(target.mean(1), torch.zeros(2, 16), atol=1e-5, rtol=0)


def test_too_many_layers_is_the_encoders_error():
    encoder, x = vit()
    with pytest.raises(ValueError, match=r"depth = 3"):
        TopLayersAverage(4)(encoder, x)
    with pytest.raises(ValueError, match="layers"):
        TopLayersAverage(0)


def test_targets_leave_the_encoder_in_its_mode_and_its_parameters_trainable():
    encoder, x = vit()
    encoder.train()
    for target in (LastLayer(), TopLayersAverage(2)):
        out = target(encoder, x)
        assert encoder.training and not out.requires_grad
    assert all(p.requires_grad for p in encoder.parameters())
    assert list(LastLayer().parameters()) == [] and list(TopLayersAverage().parameters()) == []


# ----- dBOT's staged teacher ------------------------------------------------------------------------------------


def test_staged_tau_copies_at_the_last_step_of_each_stage_but_the_final_one():
    # 12 steps, 3 stages of 4: stage 1 = steps 0-3, stage 2 = 4-7, stage 3 = 8-11; copies after steps 3 and 7
    assert [StagedTau(3)(s, 12) for s in range(12)] == [1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1]
    # 10 steps, 3 stages: stage k starts at ceil(10 k / 3) = 4, 7, so stages are steps 0-3, 4-6, 7-9
    assert [StagedTau(3)(s, 10) for s in range(10)] == [1, 1, 1, 0, 1, 1, 0, 1, 1, 1]
    assert [StagedTau(1)(s, 12) for s in range(12)] == [1.0] * 12  # one stage: the random teacher throughout
    assert StagedTau(3)(12, 12) == StagedTau(3)(30, 12) == 1.0  # past the estimated end: stays frozen
    assert isinstance(StagedTau(2)(0, 4), float)
    with pytest.raises(ValueError, match="stages"):
        StagedTau(0)


def test_staged_teacher_is_the_student_at_the_end_of_the_previous_stage():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    teacher = EMATeacher(online, StagedTau(3))
    initial = {k: v.clone() for k, v in online.state_dict().items()}
    end_of_stage = {}
    total = 12
    for step in range(total):
        with torch.no_grad():  # an "optimizer step": new weights every step
            for p in online.parameters():
                p.add_(torch.randn_like(p))
        if step in (3, 7):
            end_of_stage[step] = {k: v.clone() for k, v in online.state_dict().items()}
        teacher.update(step, total)  # as the base does, after each optimizer step
        expected = initial if step < 3 else end_of_stage[3] if step < 7 else end_of_stage[7]
        for k, v in teacher.module.state_dict().items():
            assert torch.equal(v, expected[k]), (step, k)
    assert not torch.equal(teacher.module[0].weight, online[0].weight)


def test_batch_standardized_targets_have_zero_mean_and_unit_spread_per_position_and_channel():
    from byol.methods.jepa_targets import BatchStandardized

    torch.manual_seed(0)
    encoder = TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs={"img_size": 16, "patch_size": 4,
                                                                             "embed_dim": 16, "depth": 1, "num_heads": 2})
    x = torch.randn(5, 1, 16, 16)
    h = encoder.tokens(x).patches
    expected = (h - h.mean(0)) / (h.var(0, unbiased=False) + 1e-6).sqrt()  # by hand, over the batch
    out = BatchStandardized()(encoder, x)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.mean(0), torch.zeros(16, 16), atol=1e-5, rtol=0)
    assert not out.requires_grad
