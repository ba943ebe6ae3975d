"""DIN and DSSM on tf: padded history positions never change DIN's prediction and the
history shares its candidate's table; DSSM's score, in-batch softmax loss (hand case, no
positives) and in-batch recall@k (hand case, same definition as torch)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from easyrec.models.tf.retrieval import in_batch_hits_at_k, in_batch_recall_at_k
from easyrec.models.torch import retrieval as torch_retrieval
from tests.easyrec.zoo_tf_helpers import build, tf, tf_batch


@pytest.mark.parametrize("softmax", [False, True])
def test_din_padded_positions_do_not_change_the_output(softmax: bool) -> None:
    model = build("din", attention_softmax=softmax)
    inputs, _ = tf_batch(8, seed=5)
    lengths = np.array([6, 3, 0, 1, 5, 2, 4, 0])
    mask = np.arange(6)[None, :] < lengths[:, None]
    values = np.maximum(inputs["hist.values"].numpy(), 1) * mask
    inputs["hist.lengths"] = tf.constant(lengths)
    inputs["hist.values"] = tf.constant(values)
    for training in (True, False):
        before = model(inputs, training=training)["like"].numpy()
        junk = dict(inputs, **{"hist.values": tf.constant(np.where(
            mask, values, np.random.default_rng(0).integers(0, 64, (8, 6))))})
        np.testing.assert_allclose(model(junk, training=training)["like"], before,
                                   rtol=1e-6, atol=1e-6)
        changed = values.copy()
        changed[1, 0] = (changed[1, 0] + 1) % 64
        after = model(dict(inputs, **{"hist.values": tf.constant(changed)}),
                      training=training)["like"].numpy()
        assert not np.isclose(after[1], before[1])
        np.testing.assert_allclose(after[0], before[0], rtol=1e-6)


def test_din_history_attends_through_the_candidates_table() -> None:
    model = build("din")
    tables = sorted(int(v.shape[0]) for v in model.sparse_variables())
    # user_id and item (shared by item_id and hist) in the width-8 table; tags in width 4
    assert tables == [20, 128]
    assert model.target_names == ("item_id",)


def test_dssm_score_is_cosine_over_temperature() -> None:
    model = build("dssm")
    assert model.retrieval
    out = model(tf_batch(5)[0])
    user, item = out["user_emb"].numpy(), out["item_emb"].numpy()
    cos = (user * item).sum(1) / np.linalg.norm(user, axis=1) / np.linalg.norm(item, axis=1)
    np.testing.assert_allclose(out["like"], cos / 0.1, rtol=1e-5, atol=1e-5)


def test_dssm_in_batch_softmax_uses_only_positive_rows() -> None:
    model = build("dssm")
    user = tf.Variable([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    item = tf.constant([[0.0, 1.0], [1.0, 0.0], [0.8, 0.6]])
    labels = {"like": tf.constant([1.0, 0.0, 1.0])}
    with tf.GradientTape() as tape:
        loss = model.loss({"user_emb": tf.convert_to_tensor(user), "item_emb": item,
                           "like": tf.zeros(3)}, labels)
    sims = user.numpy() @ item.numpy().T / 0.1
    want = 0.0
    for r in (0, 2):
        want += -(sims[r, r] - np.log(np.exp(sims[r]).sum())) / 2
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    grad = tape.gradient(loss, user).numpy()
    assert np.abs(grad[1]).sum() == 0  # a negative row is only a candidate item
    # the torch zoo gives the same number
    t_user, t_item = torch.tensor(user.numpy()), torch.tensor(item.numpy())
    from easyrec.models import specs
    from tests.easyrec.zoo_helpers import FEATURES, make_config

    torch_model = specs.build_model(make_config("dssm"), FEATURES)
    t_loss = torch_model.loss({"user_emb": t_user, "item_emb": t_item, "like": torch.zeros(3)},
                              {"like": torch.tensor([1.0, 0.0, 1.0])})
    np.testing.assert_allclose(float(loss), float(t_loss), rtol=1e-5)


def test_dssm_batch_without_positives_gives_zero_loss_with_a_gradient_path() -> None:
    model = build("dssm")
    inputs, _ = tf_batch(6)
    with tf.GradientTape() as tape:
        loss = model.loss(model(inputs, training=True), {"like": tf.zeros(6)})
    assert float(loss) == 0.0
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)  # a path, all zeros


def test_recall_at_k_on_a_hand_made_batch_same_as_torch() -> None:
    a, b, c = [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]
    items = np.array([a, b, a, c], np.float32)  # item a appears twice: counted once
    users = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    assert in_batch_recall_at_k(users, items, 1) == 0.5
    assert in_batch_recall_at_k(tf.constant(users), tf.constant(items), 2) == 0.5
    assert in_batch_recall_at_k(users, items, 3) == 1.0  # 3 distinct items, not 4 rows
    positive = np.array([True, True, False, True])
    assert in_batch_hits_at_k(users, items, 1, positive) == (2, 3)
    assert math.isnan(in_batch_recall_at_k(users, items, 1, np.zeros(4, bool)))
    rng = np.random.default_rng(0)
    u, i = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    i[10:20] = i[0]  # duplicates
    for k in (1, 5, 20):
        assert in_batch_hits_at_k(u, i, k) == torch_retrieval.in_batch_hits_at_k(
            torch.tensor(u), torch.tensor(i), k)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_dssm_similarity_option(similarity: str) -> None:
    model = build("dssm", similarity=similarity)
    norms = tf.norm(model(tf_batch(4)[0])["user_emb"], axis=1).numpy()
    assert np.allclose(norms, 1.0, atol=1e-5) == (similarity == "cosine")
