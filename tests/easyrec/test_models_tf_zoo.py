"""Every tf.keras zoo model: output keys/shapes, gradients to every variable, a tiny overfit
inside tf.function, one trace for every batch size, the sparse/dense variable split, the
multi-task loss and the registry."""
from __future__ import annotations

import numpy as np
import pytest

from tests.easyrec.zoo_tf_helpers import (ALL_CONFIGS, FEATURES, build, make_config, tf,
                                          tf_batch, train_step)


def test_every_zoo_config_builds_a_tf_model() -> None:
    for name in ALL_CONFIGS:
        model = build(name)
        assert model.__class__.__module__.startswith("easyrec.models.tf.")


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_outputs_keys_and_shapes(name: str) -> None:
    model = build(name)
    inputs, _ = tf_batch(5)
    out = model(inputs)
    tasks = [t.name for t in model.cfg.tasks]
    assert model.task_names == tasks
    expected = set(tasks) | ({"user_emb", "item_emb"} if model.retrieval else set())
    assert set(out) == expected
    for t in tasks:
        assert out[t].shape == (5,) and out[t].dtype == tf.float32
    if model.retrieval:
        assert out["user_emb"].shape == out["item_emb"].shape == (5, 8)
        np.testing.assert_allclose(tf.norm(out["user_emb"], axis=1), np.ones(5), atol=1e-5)
    preds = model.predict_outputs(out)
    for t, binary in zip(tasks, model.task_binary):
        if binary:
            assert np.all((preds[t].numpy() > 0) & (preds[t].numpy() < 1))
        else:
            np.testing.assert_array_equal(preds[t], out[t])


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_variable_gets_a_gradient(name: str) -> None:
    model = build(name)
    inputs, labels = tf_batch(16)
    labels["like"] = tf.concat([tf.ones(4), labels["like"][4:]], 0)  # DSSM needs positives
    with tf.GradientTape() as tape:
        loss = model.loss(model(inputs, training=True), labels)
    assert loss.shape == ()
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    for v, g in zip(variables, grads):
        assert g is not None, v.path
        dense = tf.convert_to_tensor(g)
        assert float(tf.reduce_sum(tf.abs(dense))) > 0, v.path
    # the tables get row gradients, not table-sized tensors
    tables = {id(v) for v in model.sparse_variables()}
    for v, g in zip(variables, grads):
        assert isinstance(g, tf.IndexedSlices) == (id(v) in tables), v.path


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_overfits_64_samples_inside_tf_function(name: str) -> None:
    model = build(name)
    inputs, labels = tf_batch(64, seed=3)
    if model.retrieval:
        labels["like"] = tf.ones(64)
    step = train_step(model)
    first = float(model.loss(model(inputs), labels))
    for _ in range(100):
        step(inputs, labels)
    last = float(model.loss(model(inputs), labels))
    assert last < 0.25 * first, (first, last)
    assert step.experimental_get_tracing_count() == 1


def test_one_trace_serves_every_batch_size_and_id_count() -> None:
    model = build("deepfm")
    step = train_step(model)
    spec = tf.nest.map_structure(
        lambda t: tf.TensorSpec([None] * t.shape.rank if t.shape.rank == 1
                                else [None, t.shape[1]], t.dtype), tf_batch(4))
    fn = step.get_concrete_function(*spec)
    for batch in (1, 3, 50):
        inputs, labels = tf_batch(batch, seed=batch)
        assert np.isfinite(float(fn(inputs, labels)))


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_sparse_and_dense_variables_partition_the_trainables(name: str) -> None:
    model = build(name)
    sparse = {id(v) for v in model.sparse_variables()}
    dense = {id(v) for v in model.dense_variables()}
    everything = {id(v) for v in model.trainable_variables}
    assert sparse and dense and not sparse & dense and sparse | dense == everything
    assert all(len(v.shape) == 2 and "embedding" in v.path for v in model.sparse_variables())


def test_multi_task_loss_is_the_weighted_sum() -> None:
    model = build("mmoe")
    inputs, labels = tf_batch(8)
    out = model(inputs)
    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels["click"], out["click"]))
    mse = tf.reduce_mean(tf.square(out["rating"] - labels["rating"]))
    np.testing.assert_allclose(model.loss(out, labels), bce + 0.5 * mse, rtol=1e-6)


def test_missing_label_names_the_task() -> None:
    model = build("lr")
    inputs, _ = tf_batch(4)
    with pytest.raises(KeyError, match="like"):
        model.loss(model(inputs), {"click": tf.zeros(4)})


def test_keras_compile_does_not_shadow_the_zoo_loss() -> None:
    model = build("lr")
    model.compile(optimizer="adam", loss="mse")
    inputs, labels = tf_batch(4)
    assert float(model.loss(model(inputs), labels)) > 0


def test_registry_builds_the_tf_twin_of_every_entry() -> None:
    from easyrec.models.specs import MODEL_REGISTRY

    for name, entry in MODEL_REGISTRY.items():
        torch_mod, torch_cls = entry.backends["torch"].split(":")
        assert entry.backends["tf"] == torch_mod.replace(".torch.", ".tf.") + ":" + torch_cls
    model = specs_build("dcnv2")
    assert type(model).__name__ == "DCNv2" and isinstance(model, tf.keras.Model)


def specs_build(name: str):
    from easyrec.models import specs

    return specs.build_model(make_config(name), FEATURES, backend="tf")


def test_dropout_and_batchnorm_follow_the_training_flag() -> None:
    model = build("wide_and_deep", dropout=0.5, batchnorm=True)
    inputs, _ = tf_batch(32)
    a, b = model(inputs, training=False)["like"], model(inputs, training=False)["like"]
    np.testing.assert_array_equal(a, b)
    c = model(inputs, training=True)["like"]
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_mixed_bfloat16_policy_keeps_tables_outputs_and_loss_in_float32(name: str) -> None:
    """hardware.precision=bf16 on tf: MLPs compute in bfloat16, everything else stays f32."""
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build(name)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    inputs, labels = tf_batch(16)
    labels["like"] = tf.concat([tf.ones(4), labels["like"][4:]], 0)
    with tf.GradientTape() as tape:
        out = model(inputs, training=True)
        loss = model.loss(out, labels)
    assert all(v.dtype == tf.float32 for v in out.values()) and loss.dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads) and np.isfinite(float(loss))
    bf16 = [layer for layer in model._flatten_layers()
            if isinstance(layer, tf.keras.layers.Dense) and layer.compute_dtype == "bfloat16"]
    assert bool(bf16) == (name != "lr")  # LR has no MLP: all of it stays f32
    ref = build(name)  # same seed, float32: close predictions
    np.testing.assert_allclose(ref(inputs)[model.task_names[0]],
                               model(inputs)[model.task_names[0]], rtol=0.1, atol=0.1)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_tf_checkpoint_holds_every_variable(name: str, tmp_path) -> None:
    model = build(name)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(path) if n.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(model.variables)


@pytest.mark.parametrize("name", ["deepfm", "din", "mmoe", "dcnv2_parallel"])
def test_checkpoint_round_trip_restores_every_variable(name: str, tmp_path) -> None:
    model = build(name, seed=1)
    inputs, labels = tf_batch(8)
    train_step(model)(inputs, labels)  # moved away from the init (BatchNorm stats too)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    fresh = build(name, seed=2)
    tf.train.Checkpoint(model=fresh).read(path).assert_consumed()
    for a, b in zip(model.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_array_equal(model(inputs)[model.task_names[0]],
                                  fresh(inputs)[model.task_names[0]])
    weights = str(tmp_path / "model.weights.h5")
    model.save_weights(weights)
    other = build(name, seed=3)
    other.load_weights(weights)
    np.testing.assert_array_equal(model(inputs)[model.task_names[0]],
                                  other(inputs)[model.task_names[0]])


@pytest.mark.parametrize("name", ["deepfm", "din", "dssm"])
def test_embedding_init_std_sets_the_tables_on_both_backends(name: str) -> None:
    """model.embedding_init_std: the deep tables start N(0, std) on torch and tf alike;
    null keeps N(0, 1/sqrt(dim)); the first-order tables stay zero."""
    import torch

    from easyrec.models import specs

    def tables(backend: str, std: float | None) -> list[np.ndarray]:
        cfg = make_config(name)
        cfg.embedding_init_std = std
        torch.manual_seed(0)
        model = (build(name, embedding_init_std=std) if backend == "tf"
                 else specs.build_model(cfg, FEATURES, backend="torch"))
        if backend == "tf":
            return [np.asarray(v) for v in model.embedding.fused.variables if len(v.shape) == 2]
        return [p.detach().numpy() for p in model.embedding.parameters()]

    for backend in ("torch", "tf"):
        small = tables(backend, 1e-3)
        default = tables(backend, None)
        assert small and all(0.5e-3 < t.std() < 2e-3 for t in small), backend
        assert all(abs(t.std() - 1 / np.sqrt(t.shape[1])) < 0.25 / np.sqrt(t.shape[1]) for t in default), backend
