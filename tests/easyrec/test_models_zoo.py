"""Every zoo model: output keys/shapes, gradients, a tiny overfit, TorchScript and
torch.export round trips, and the sparse/dense parameter split."""
from __future__ import annotations

import io

import pytest
import torch

from easyrec.models import specs
from easyrec.models.torch.base import RecModel, ServingModule
from easyrec.models.torch.export import export_serving
from tests.easyrec.zoo_helpers import ALL_CONFIGS, FEATURES, make_batch, make_config


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one intra-op thread (no thread hand-offs), and the
    test suite shares this machine's two cores with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(name: str, seed: int = 0) -> RecModel:
    torch.manual_seed(seed)
    return specs.build_model(make_config(name), FEATURES)


def test_every_config_is_valid() -> None:
    """The shared zoo configs (tests/easyrec/zoo_helpers.py) pass the models' own checks."""
    for name in ALL_CONFIGS:
        make_config(name).check(FEATURES, labels=["like", "click", "rating"])


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_outputs_keys_and_shapes(name: str) -> None:
    model = _model(name)
    inputs, _ = make_batch(5)
    out = model(inputs)
    tasks = [t.name for t in model.cfg.tasks]
    expected = set(tasks) | ({"user_emb", "item_emb"} if model.retrieval else set())
    assert set(out) == expected
    for t in tasks:
        assert out[t].shape == (5,) and out[t].dtype == torch.float32
    if model.retrieval:
        assert out["user_emb"].shape == out["item_emb"].shape == (5, 8)
        assert torch.allclose(out["user_emb"].norm(dim=1), torch.ones(5), atol=1e-5)
    preds = model.predict(out)
    for t, binary in zip(tasks, model.task_binary):
        if binary:
            assert ((preds[t] > 0) & (preds[t] < 1)).all()
        else:
            assert torch.equal(preds[t], out[t])


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = _model(name)
    model.train()
    inputs, labels = make_batch(16)
    labels["like"][:4] = 1.0  # DSSM needs positives
    loss = model.loss(model(inputs), labels)
    assert loss.dim() == 0
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_overfits_64_samples(name: str) -> None:
    model = _model(name)
    model.train()
    inputs, labels = make_batch(64, seed=3)
    if model.retrieval:
        labels["like"] = torch.ones(64)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    first = model.loss(model(inputs), labels).item()
    for _ in range(100):
        opt.zero_grad()
        loss = model.loss(model(inputs), labels)
        loss.backward()
        opt.step()
    last = model.loss(model(inputs), labels).item()
    assert last < 0.25 * first, (first, last)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_torchscript_matches_eager(name: str) -> None:
    serving = ServingModule(_model(name))
    scripted = torch.jit.script(serving)
    for batch in (1, 7):
        inputs, _ = make_batch(batch, seed=batch)
        eager, script = serving(inputs), scripted(inputs)
        assert set(eager) == set(script)
        for k in eager:
            torch.testing.assert_close(script[k], eager[k])
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    inputs, _ = make_batch(3)
    for k, v in serving(inputs).items():
        torch.testing.assert_close(loaded(inputs)[k], v)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_torch_export_round_trip_with_dynamic_batch(name: str) -> None:
    model = _model(name)
    example, _ = make_batch(6, seed=1)
    program = export_serving(model, example)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    exported = torch.export.load(buf).module()
    serving = ServingModule(model)
    for batch in (1, 2, 13):
        inputs, _ = make_batch(batch, seed=10 + batch)
        eager, got = serving(inputs), exported(inputs)
        for k in eager:
            torch.testing.assert_close(got[k], eager[k], rtol=1e-5, atol=1e-5)


def test_export_accepts_a_feature_with_no_ids_in_the_batch() -> None:
    model = _model("deepfm")
    example, _ = make_batch(6)
    exported = export_serving(model, example).module()
    inputs, _ = make_batch(4, seed=2)
    inputs["tags.values"] = torch.zeros(0, dtype=torch.long)
    inputs["tags.weights"] = torch.zeros(0)
    inputs["tags.offsets"] = torch.zeros(5, dtype=torch.long)
    torch.testing.assert_close(exported(inputs)["like"], ServingModule(model)(inputs)["like"])


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_sparse_and_dense_parameters_partition_the_model(name: str) -> None:
    model = _model(name)
    sparse = {id(p) for p in model.sparse_parameters()}
    dense = {id(p) for p in model.dense_parameters()}
    everything = {id(p) for p in model.parameters()}
    assert sparse and dense and not sparse & dense and sparse | dense == everything
    bags = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.EmbeddingBag)}
    assert sparse == bags


def test_multi_task_loss_is_the_weighted_sum() -> None:
    model = _model("mmoe")
    inputs, labels = make_batch(8)
    out = model(inputs)
    want = (torch.nn.functional.binary_cross_entropy_with_logits(out["click"], labels["click"])
            + 0.5 * torch.nn.functional.mse_loss(out["rating"], labels["rating"]))
    torch.testing.assert_close(model.loss(out, labels), want)


def test_missing_label_names_the_task() -> None:
    model = _model("lr")
    inputs, _ = make_batch(4)
    with pytest.raises(KeyError, match="like"):
        model.loss(model(inputs), {"click": torch.zeros(4)})


def test_one_fused_lookup_per_width_for_the_whole_model() -> None:
    model = _model("wide_and_deep")
    calls: list[int] = []
    for m in model.modules():
        if isinstance(m, torch.nn.EmbeddingBag):
            m.register_forward_hook(lambda mod, args, out: calls.append(mod.embedding_dim))
    inputs, _ = make_batch(4)
    model(inputs)
    # deep tables have widths 4 and 8; the wide tables width 1 (one task)
    assert sorted(calls) == [1, 4, 8]


@pytest.mark.parametrize("name", ["deepfm", "din"])
def test_sparse_gradients_match_dense_ones(name: str) -> None:
    inputs, labels = make_batch(8)
    grads = []
    for sparse_grad in (False, True):
        torch.manual_seed(0)
        cfg = make_config(name)
        cfg.sparse_grad = sparse_grad
        model = specs.build_model(cfg, FEATURES)
        model.loss(model(inputs), labels).backward()
        tables = model.sparse_parameters()
        assert all(p.grad.is_sparse == sparse_grad for p in tables)
        grads.append([p.grad.to_dense() for p in tables])
        if sparse_grad:  # the optimizer split the trainer uses
            torch.optim.SparseAdam(tables, lr=0.01).step()
            torch.optim.Adam(model.dense_parameters(), lr=0.01).step()
    for dense, sparse in zip(*grads):
        torch.testing.assert_close(sparse, dense)
