"""Layers against brute-force definitions: FM, cross network, target attention, MMoE."""
from __future__ import annotations

import itertools

import torch

from easyrec.models.torch.layers import (MLP, CrossNetV2, FMInteraction, MMoELayer,
                                         TargetAttention)


def test_fm_equals_sum_of_pairwise_dot_products() -> None:
    fields = torch.randn(4, 5, 3)
    want = torch.zeros(4, 1)
    for i, j in itertools.combinations(range(5), 2):
        want[:, 0] += (fields[:, i] * fields[:, j]).sum(1)
    torch.testing.assert_close(FMInteraction()(fields), want)


def test_cross_layer_formula_full_and_low_rank() -> None:
    x0 = torch.randn(6, 10)
    full = CrossNetV2(10, 1)
    want = x0 * full.up[0](x0) + x0
    torch.testing.assert_close(full(x0), want)
    low = CrossNetV2(10, 2, low_rank=3)
    assert low.down[0].weight.shape == (3, 10) and low.up[0].weight.shape == (10, 3)
    x1 = x0 * low.up[0](low.down[0](x0)) + x0
    torch.testing.assert_close(low(x0), x0 * low.up[1](low.down[1](x1)) + x1)


def test_mlp_without_hidden_units_is_identity() -> None:
    mlp = MLP(7, [])
    x = torch.randn(2, 7)
    assert mlp.output_dim == 7 and torch.equal(mlp(x), x)


def test_target_attention_masks_padding_and_handles_empty_history() -> None:
    torch.manual_seed(0)
    for softmax in (False, True):
        att = TargetAttention(4, [8], softmax=softmax)
        query, keys = torch.randn(3, 4), torch.randn(3, 5, 4)
        lengths = torch.tensor([5, 2, 0])
        out = att(query, keys, lengths)
        noisy = keys.clone()
        noisy[1, 2:] = torch.randn(3, 4) * 100
        noisy[2] = torch.randn(5, 4)
        torch.testing.assert_close(att(query, noisy, lengths), out)
        assert out[2].abs().sum() == 0  # nothing to attend to
        changed = keys.clone()
        changed[1, 1] += 1.0
        assert not torch.allclose(att(query, changed, lengths)[1], out[1])


def test_mmoe_mixes_experts_with_a_softmax_gate_per_task() -> None:
    layer = MMoELayer(6, num_experts=3, expert_units=[5], num_tasks=2, gate_units=[])
    x = torch.randn(4, 6)
    outs = layer(x)
    assert len(outs) == 2 and outs[0].shape == (4, 5)
    experts = torch.stack([e(x) for e in layer.experts], dim=1)
    w = torch.softmax(layer.gates[1](x), dim=1)
    torch.testing.assert_close(outs[1], (w.unsqueeze(2) * experts).sum(1))
