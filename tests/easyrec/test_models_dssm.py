"""DSSM: the in-batch softmax loss and in-batch recall@k on hand-made cases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from easyrec.models import specs
from easyrec.models.torch.retrieval import in_batch_hits_at_k, in_batch_recall_at_k
from tests.easyrec.zoo_helpers import FEATURES, make_batch, make_config


def _dssm():
    torch.manual_seed(0)
    return specs.build_model(make_config("dssm"), FEATURES)


def test_score_is_cosine_over_temperature() -> None:
    model = _dssm()
    assert model.retrieval
    out = model(make_batch(5)[0])
    want = F.cosine_similarity(out["user_emb"], out["item_emb"]) / 0.1
    torch.testing.assert_close(out["like"], want)


def test_in_batch_softmax_uses_only_positive_rows() -> None:
    model = _dssm()
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], requires_grad=True)
    item = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.8, 0.6]])
    labels = {"like": torch.tensor([1.0, 0.0, 1.0])}
    loss = model.loss({"user_emb": user, "item_emb": item, "like": torch.zeros(3)}, labels)
    sims = (user @ item.T / 0.1).detach()
    want = 0.0
    for r in (0, 2):
        want += -(sims[r, r] - torch.logsumexp(sims[r], 0)) / 2
    torch.testing.assert_close(loss, torch.as_tensor(want))
    loss.backward()
    assert user.grad[1].abs().sum() == 0  # a negative row is only a candidate item


def test_batch_without_positives_gives_zero_loss_with_a_grad_fn() -> None:
    model = _dssm()
    inputs, _ = make_batch(6)
    loss = model.loss(model(inputs), {"like": torch.zeros(6)})
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()  # must not raise


def test_recall_at_k_on_a_hand_made_batch() -> None:
    a, b, c = [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]
    items = torch.tensor([a, b, a, c])  # item a appears twice: counted once
    users = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # own-item ranks among distinct {a, b, c}: row0 a first; row1 b after a, c; row2 a after
    # b, c; row3 c first
    assert in_batch_recall_at_k(users, items, 1) == 0.5
    assert in_batch_recall_at_k(users, items, 2) == 0.5
    assert in_batch_recall_at_k(users, items, 3) == 1.0  # 3 distinct items, not 4 rows
    positive = torch.tensor([True, True, False, True])
    assert in_batch_hits_at_k(users, items, 1, positive) == (2, 3)
    assert math.isnan(in_batch_recall_at_k(users, items, 1, torch.zeros(4, dtype=torch.bool)))


def test_training_raises_in_batch_recall() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is many times faster
    try:
        _train_and_check_recall()
    finally:
        torch.set_num_threads(threads)


def _train_and_check_recall() -> None:
    model = _dssm()
    inputs, _ = make_batch(64, seed=7)
    labels = {"like": torch.ones(64)}
    model.eval()
    with torch.no_grad():
        out = model(inputs)
    before = in_batch_recall_at_k(out["user_emb"], out["item_emb"], 5)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        opt.zero_grad()
        model.loss(model(inputs), labels).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(inputs)
    after = in_batch_recall_at_k(out["user_emb"], out["item_emb"], 5)
    assert after > 0.9 > before


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_similarity_option(similarity: str) -> None:
    cfg = make_config("dssm")
    cfg.similarity = similarity
    model = specs.build_model(cfg, FEATURES)
    out = model(make_batch(4)[0])
    norms = out["user_emb"].norm(dim=1)
    assert torch.allclose(norms, torch.ones(4), atol=1e-5) == (similarity == "cosine")
