"""tf layers against brute-force definitions, and against the torch zoo on the same numbers:
each torch layer's weights copied into its tf twin must give the same outputs (FM, cross
network, MLP with BatchNorm, target attention, pooling, the fused lookup), and so must
whole models (DeepFM, DCN-V2 parallel with BatchNorm, DIN)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from easyrec.models import specs
from easyrec.models.tf.embedding import EmbeddingCollection as TFEmbeddingCollection
from easyrec.models.tf.embedding import pool_sequence
from easyrec.models.tf.layers import (MLP, CrossNetV2, MMoELayer, TargetAttention,
                                      fm_interaction)
from easyrec.models.torch import layers as torch_layers
from easyrec.models.torch.embedding import EmbeddingCollection as TorchEmbeddingCollection
from easyrec.models.torch.embedding import pool_sequence as torch_pool_sequence
from tests.easyrec.zoo_tf_helpers import FEATURES, build, make_batch, make_config, tf, tf_batch


def _np(x) -> np.ndarray:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def copy_linear(src: torch.nn.Linear, dst) -> None:
    """torch Linear (weight [out, in]) -> keras Dense (kernel [in, out])."""
    dst.kernel.assign(_np(src.weight).T)
    if src.bias is not None:
        dst.bias.assign(_np(src.bias))


def copy_mlp(src: torch_layers.MLP, dst: MLP) -> None:
    linears = [m for m in src.net if isinstance(m, torch.nn.Linear)]
    norms = [m for m in src.net if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(linears) == len(dst.linears) and len(norms) == len(dst.norms)
    for a, b in zip(linears, dst.linears):
        copy_linear(a, b)
    for a, b in zip(norms, dst.norms):
        b.gamma.assign(_np(a.weight))
        b.beta.assign(_np(a.bias))
        b.moving_mean.assign(_np(a.running_mean))
        b.moving_variance.assign(_np(a.running_var))


def copy_embeddings(src: TorchEmbeddingCollection, dst: TFEmbeddingCollection) -> None:
    assert len(src.fused) == len(dst.fused)
    for a, b in zip(src.fused, dst.fused):
        assert a.table_bases == b.table_bases  # same stacking of tables
        b.weight.assign(_np(a.bag.weight))


def test_fm_equals_sum_of_pairwise_dot_products_and_torch() -> None:
    fields = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    want = np.zeros((4, 1), np.float32)
    for i, j in itertools.combinations(range(5), 2):
        want[:, 0] += (fields[:, i] * fields[:, j]).sum(1)
    np.testing.assert_allclose(fm_interaction(tf.constant(fields)), want, rtol=1e-5, atol=1e-5)
    torch_fm = torch_layers.FMInteraction()(torch.from_numpy(fields))
    np.testing.assert_allclose(fm_interaction(tf.constant(fields)), _np(torch_fm), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("low_rank", [0, 3])
def test_cross_network_formula_and_torch_parity(low_rank: int) -> None:
    torch.manual_seed(0)
    src = torch_layers.CrossNetV2(10, 2, low_rank=low_rank)
    dst = CrossNetV2(10, 2, low_rank=low_rank)
    for a, b in zip(src.up, dst.up):
        copy_linear(a, b)
    for a, b in zip(src.down, dst.down):
        copy_linear(a, b)
    x0 = np.random.default_rng(1).standard_normal((6, 10)).astype(np.float32)
    np.testing.assert_allclose(dst(tf.constant(x0)), _np(src(torch.from_numpy(x0))),
                               rtol=1e-5, atol=1e-5)
    # the formula itself: x1 = x0 * (W x0 + b) + x0
    one = CrossNetV2(10, 1, low_rank=low_rank)
    inner = one.up[0](one.down[0](x0)) if low_rank else one.up[0](x0)
    np.testing.assert_allclose(one(tf.constant(x0)), x0 * inner + x0, rtol=1e-5, atol=1e-5)
    if low_rank:
        assert tuple(dst.down[0].kernel.shape) == (10, 3)
        assert tuple(dst.up[0].kernel.shape) == (3, 10)


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "tanh", "sigmoid", "prelu"])
def test_mlp_with_batchnorm_matches_torch(activation: str) -> None:
    torch.manual_seed(0)
    src = torch_layers.MLP(7, [5, 4], activation, batchnorm=True).eval()
    for m in src.net:
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    dst = MLP(7, [5, 4], activation, batchnorm=True)
    copy_mlp(src, dst)
    x = np.random.default_rng(2).standard_normal((8, 7)).astype(np.float32)
    with torch.no_grad():
        want = _np(src(torch.from_numpy(x)))
    np.testing.assert_allclose(dst(tf.constant(x), training=False), want, rtol=1e-4, atol=1e-5)


def test_mlp_without_hidden_units_is_identity() -> None:
    mlp = MLP(7, [])
    x = tf.random.normal([2, 7])
    assert mlp.output_dim == 7
    np.testing.assert_array_equal(mlp(x), x)


def test_linear_init_follows_torch() -> None:
    tf.keras.utils.set_random_seed(0)
    mlp = MLP(400, [300])
    kernel, bias = mlp.linears[0].kernel.numpy(), mlp.linears[0].bias.numpy()
    bound = 1 / np.sqrt(400)
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
    assert np.abs(bias).max() <= bound and np.abs(bias).std() > 0


@pytest.mark.parametrize("softmax", [False, True])
def test_target_attention_masks_padding_matches_torch_and_handles_empty_history(
        softmax: bool) -> None:
    torch.manual_seed(0)
    src = torch_layers.TargetAttention(4, [8], softmax=softmax)
    att = TargetAttention(4, [8], softmax=softmax)
    copy_mlp(src.mlp, att.mlp)
    copy_linear(src.score, att.score)
    rng = np.random.default_rng(3)
    query = rng.standard_normal((3, 4)).astype(np.float32)
    keys = rng.standard_normal((3, 5, 4)).astype(np.float32)
    lengths = np.array([5, 2, 0])
    out = att(tf.constant(query), tf.constant(keys), tf.constant(lengths))
    with torch.no_grad():
        want = src(torch.from_numpy(query), torch.from_numpy(keys), torch.from_numpy(lengths))
    np.testing.assert_allclose(out, _np(want), rtol=1e-5, atol=1e-5)
    noisy = keys.copy()
    noisy[1, 2:] = rng.standard_normal((3, 4)) * 100
    noisy[2] = rng.standard_normal((5, 4))
    np.testing.assert_allclose(att(tf.constant(query), tf.constant(noisy), tf.constant(lengths)),
                               out, rtol=1e-6, atol=1e-6)
    assert float(tf.reduce_sum(tf.abs(out[2]))) == 0  # nothing to attend to
    changed = keys.copy()
    changed[1, 1] += 1.0
    assert not np.allclose(att(tf.constant(query), tf.constant(changed),
                               tf.constant(lengths))[1], out[1])


def test_mmoe_mixes_experts_with_a_softmax_gate_per_task() -> None:
    layer = MMoELayer(6, num_experts=3, expert_units=[5], num_tasks=2, gate_units=[])
    x = tf.random.normal([4, 6])
    outs = layer(x)
    assert len(outs) == 2 and tuple(outs[0].shape) == (4, 5)
    experts = tf.stack([e(x) for e in layer.experts], axis=1)
    w = tf.nn.softmax(layer.gate(1, x), axis=1)
    np.testing.assert_allclose(outs[1], tf.reduce_sum(w[:, :, None] * experts, 1), rtol=1e-5,
                               atol=1e-6)


def test_pool_sequence_matches_torch() -> None:
    emb = np.random.default_rng(4).standard_normal((3, 4, 2)).astype(np.float32)
    lengths = np.array([4, 1, 0])
    for mean in (False, True):
        np.testing.assert_allclose(
            pool_sequence(tf.constant(emb), tf.constant(lengths), mean),
            _np(torch_pool_sequence(torch.from_numpy(emb), torch.from_numpy(lengths), mean)),
            rtol=1e-6, atol=1e-6)


def test_fused_lookup_matches_torch() -> None:
    names = ["user_id", "item_id", "city", "tags", "hist"]
    torch.manual_seed(0)
    src = TorchEmbeddingCollection(FEATURES, names)
    dst = TFEmbeddingCollection(FEATURES, names)
    copy_embeddings(src, dst)
    inputs, _ = make_batch(9, seed=6)
    with torch.no_grad():
        want = src(inputs)
    got = dst({k: tf.constant(v.numpy()) for k, v in inputs.items()})
    for name in names:
        np.testing.assert_allclose(got[name], _np(want[name]), rtol=1e-5, atol=1e-6)


def _torch_and_tf(name: str, **knobs):
    cfg = make_config(name)
    for k, v in knobs.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    src = specs.build_model(cfg, FEATURES).eval()
    dst = build(name, **knobs)
    return src, dst


def _assert_same_outputs(src, dst, batch: int = 11) -> None:
    inputs, _ = make_batch(batch, seed=8)
    with torch.no_grad():
        want = src(inputs)
    got = dst(tf_batch(batch, seed=8)[0], training=False)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], _np(want[k]), rtol=1e-4, atol=1e-5, err_msg=k)


def test_deepfm_matches_torch_with_the_same_weights() -> None:
    src, dst = _torch_and_tf("deepfm")
    copy_linear(src.wide.dense[0], dst.wide.dense)
    dst.wide.bias.assign(np.full(1, 0.3, np.float32))
    with torch.no_grad():
        src.wide.bias.fill_(0.3)
        src.wide.emb.fused[0].bag.weight.normal_()  # wide tables start at zero: vary them
    copy_embeddings(src.wide.emb, dst.wide.emb)
    copy_embeddings(src.embedding, dst.embedding)
    copy_mlp(src.mlp, dst.mlp)
    copy_linear(src.heads.linear, dst.heads.linear)
    _assert_same_outputs(src, dst)


def test_dcnv2_parallel_with_batchnorm_matches_torch() -> None:
    src, dst = _torch_and_tf("dcnv2_parallel")
    copy_embeddings(src.embedding, dst.embedding)
    for a, b in zip(src.cross.up, dst.cross.up):
        copy_linear(a, b)
    copy_mlp(src.mlp, dst.mlp)
    copy_linear(src.heads.linear, dst.heads.linear)
    _assert_same_outputs(src, dst)


@pytest.mark.parametrize("softmax", [False, True])
def test_din_matches_torch_with_the_same_weights(softmax: bool) -> None:
    src, dst = _torch_and_tf("din", attention_softmax=softmax)
    copy_embeddings(src.embedding, dst.embedding)
    for a, b in zip(src.attention, dst.attention):
        copy_mlp(a.mlp, b.mlp)
        copy_linear(a.score, b.score)
    copy_mlp(src.mlp, dst.mlp)
    copy_linear(src.heads.linear, dst.heads.linear)
    _assert_same_outputs(src, dst)
