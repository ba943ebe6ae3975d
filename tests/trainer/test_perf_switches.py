"""Correctness guard of the performance switches (issue 7, item 6): each optimisation changes no
result beyond float noise — same seed, same data, the loss curve of a few steps with and
without it matches — and the loader's workers hand out exactly the same batches."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import compose

STEPS = 6


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory, movielens_table) -> Path:
    """STEPS batches of 256 MovieLens-shaped rows (seed 3), written once for the module."""
    import pyarrow.parquet as pq

    train = tmp_path_factory.mktemp("perf") / "train.parquet"
    pq.write_table(movielens_table(256 * STEPS, seed=3), train)
    return train


def _spec(train: Path, overrides: list[str]):
    from trainer.schema.validate import validate

    return validate(compose(["+experiment=movielens_deepfm", "data.dataset=null", f"data.train_path={train}",
                             "data.eval_path=null", "data.batch_size=256", *overrides]))


def _batches(spec):
    import pyarrow.parquet as pq

    from easyrec.data import make_pipeline

    table = pq.read_table(spec.root.data.train_path)
    pipeline = make_pipeline(spec)
    pipeline.fit([table])
    return pipeline, [pipeline.transform(table.slice(i * 256, 256)) for i in range(STEPS)]


def _losses(backend: str, spec, pipeline, batches, clock: bool = False, seen: list | None = None,
            pack: bool = True) -> list[float]:
    from easyrec.restore import make_engine
    from trainer.timing import StageClock

    if backend == "torch":
        import torch

        torch.manual_seed(0)
    else:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(0)
    engine = make_engine(backend, spec.model, pipeline, spec.root.trainer, "cpu", 100,
                         precision=spec.root.hardware.precision)
    if clock:
        engine.stage_clock = StageClock(1)
    if backend == "tf":
        engine.pack_inputs = pack
    losses = [engine.train_step(b)[0] for b in batches]
    if seen is not None:
        seen.append(engine)
    return losses


def _dedup_on(engine) -> bool:
    if engine.backend == "torch":
        return any(getattr(m, "dedup_ids", False) for m in engine.model.modules())
    return any(getattr(layer, "dedup_ids", False) for layer in engine.model._flatten_layers(recursive=True))


@pytest.mark.parametrize("switch", ["trainer.dedup_ids=true", "trainer.timing.sample_every=1"])
def test_torch_switch_keeps_the_loss_curve(train_file: Path, switch: str) -> None:
    base = _spec(train_file, [])
    pipeline, batches = _batches(base)
    want = _losses("torch", base, pipeline, batches)
    seen: list = []
    got = _losses("torch", _spec(train_file, [switch]), pipeline, batches, clock="timing" in switch, seen=seen)
    if "dedup" in switch:  # the switch really took effect
        assert _dedup_on(seen[0])
    else:
        assert seen[0].stage_clock.sampled == STEPS
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_torch_stage_split_is_recorded_and_changes_nothing(train_file: Path) -> None:
    """The embedding probe's hooks exist only during a sampled step and leave the math alone."""
    from easyrec.restore import make_engine
    from trainer.timing import StageClock

    spec = _spec(train_file, [])
    pipeline, batches = _batches(spec)
    import torch

    torch.manual_seed(0)
    engine = make_engine("torch", spec.model, pipeline, spec.root.trainer, "cpu", 100)
    engine.stage_clock = clock = StageClock(2)
    start = time.perf_counter()
    for b in batches:
        engine.train_step(b)
    wall = time.perf_counter() - start
    assert clock.sampled == STEPS // 2
    assert {"h2d", "embedding", "dense", "optimizer", "host"} <= set(clock.sampled_seconds)
    assert all(v >= 0 for v in clock.sampled_seconds.values())  # Laps.move never over-draws a stage
    assert sum(clock.sampled_seconds.values()) <= wall  # the stages split the sampled steps, no double count
    assert clock.sampled_seconds["embedding"] > 0
    for m in engine.model.modules():  # no hook left behind (export scripts the model)
        assert not m._forward_hooks and not m._forward_pre_hooks


@pytest.mark.slow
def test_torch_compile_keeps_the_loss_curve(train_file: Path) -> None:
    small = ["model.hidden_units=[16]"]  # compilation time grows with the graph; the check does not
    base = _spec(train_file, small)
    pipeline, batches = _batches(base)
    want = _losses("torch", base, pipeline, batches[:3])
    got = _losses("torch", _spec(train_file, [*small, "trainer.compile=true"]), pipeline, batches[:3])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("switch", ["trainer.dedup_ids=true", "trainer.compile=true"])
def test_tf_switch_keeps_the_loss_curve(train_file: Path, switch: str) -> None:
    base = _spec(train_file, ["trainer.backend=tf"])
    pipeline, batches = _batches(base)
    want = _losses("tf", base, pipeline, batches)
    seen: list = []
    got = _losses("tf", _spec(train_file, ["trainer.backend=tf", switch]), pipeline, batches, seen=seen)
    if "dedup" in switch:
        assert _dedup_on(seen[0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def _epoch_arrays(loader, epoch: int) -> list[dict[str, np.ndarray]]:
    out = []
    for _, batch in loader.epoch(epoch):
        flat = dict(batch.to_flat())
        flat.update({f"label:{k}": v for k, v in batch.labels.items()})
        out.append(flat)
    return out


@pytest.mark.parametrize("workers,kind", [(2, "thread"), (2, "process")])
def test_loader_workers_hand_out_the_same_batches(train_file: Path, workers: int, kind: str) -> None:
    from dataio.source import Source
    from easyrec.loader import BatchLoader

    spec = _spec(train_file, [])
    pipeline, _ = _batches(spec)
    path = spec.root.data.train_path

    def loader(**kw):
        src = Source(path, columns=pipeline.required_columns(with_labels=True), read_rows=300)
        return BatchLoader(src, pipeline, 100, shuffle=True, seed=7, transform_batches=3, **kw)

    want = _epoch_arrays(loader(), 1)
    other = loader(workers=workers, worker_type=kind)
    try:
        got = _epoch_arrays(other, 1)
        assert other.stats.batches == len(want) and other.stats.transform_s > 0
    finally:
        other.close()
    assert len(got) == len(want) and sum(len(b["label:like"]) for b in want) == 256 * STEPS
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in w:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def _rows(batches: list) -> list[tuple]:
    """Every row of the batches as a hashable tuple (dense values, each bag's ids, labels)."""
    out = []
    for b in batches:
        for i in range(b.size):
            row = [tuple(np.ravel(v[i])) for _, v in sorted(b.dense.items())]
            row += [tuple(sv.values[sv.offsets[i]:sv.offsets[i + 1]]) for _, sv in sorted(b.sparse.items())]
            row += [float(v[i]) for _, v in sorted(b.labels.items())]
            out.append(tuple(row))
    return out


def test_memory_cache_epochs_are_full_seeded_reshuffles(train_file: Path) -> None:
    """data.cache=memory: every epoch is each row exactly once (multi-value bags intact), a new
    order per epoch, the same order on a fresh loader (so a resumed run sees the same batches),
    and skip_batches resumes inside the epoch; unshuffled it is the stream's own batches."""
    from dataio.source import Source
    from easyrec.loader import BatchLoader

    spec = _spec(train_file, [])
    pipeline, _ = _batches(spec)

    def loader(**kw):
        src = Source(spec.root.data.train_path, columns=pipeline.required_columns(with_labels=True), read_rows=300)
        return BatchLoader(src, pipeline, 100, seed=7, transform_batches=3, **kw)

    stream = [b for _, b in loader(shuffle=False).epoch(0)]
    plain = [b for _, b in loader(shuffle=False, cache="memory").epoch(0)]
    assert [_rows([b]) for b in plain] == [_rows([b]) for b in stream]
    assert any(len(sv.values) > b.size for b in stream for sv in b.sparse.values())  # a multi-value bag

    cached = loader(shuffle=True, cache="memory")
    e1, e2 = ([b for _, b in cached.epoch(e)] for e in (1, 2))
    assert [b.size for b in e1] == [b.size for b in stream]
    assert sorted(_rows(e1)) == sorted(_rows(stream)) == sorted(_rows(e2))
    assert _rows(e1) != _rows(e2) and _rows(e1) != _rows(stream)
    again = [b for _, b in loader(shuffle=True, cache="memory").epoch(1)]
    assert _rows(again) == _rows(e1)
    assert _rows([b for _, b in cached.epoch(1, skip_batches=2)]) == _rows(e1[2:])
    assert cached.stats.batches == len(e1) * 2 + len(e1) - 2  # the fill pass is not counted


def test_tf_packed_inputs_give_the_unpacked_step(train_file: Path) -> None:
    """The TF step's inputs travel packed (one int64 + one float32 vector and their piece sizes,
    cut back inside the step): same losses as one tensor per input, on data with a multi-value
    bag (genres) and weights."""
    spec = _spec(train_file, ["trainer.backend=tf"])
    pipeline, batches = _batches(spec)
    seen: list = []
    packed = _losses("tf", spec, pipeline, batches, seen=seen)
    assert seen[0]._packed is not None and any(k.endswith(".weights") for k in seen[0]._packed[1])
    np.testing.assert_allclose(packed, _losses("tf", spec, pipeline, batches, pack=False), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kw", [{"cache": "memory", "shuffle": True}, {"cache": "memory", "shuffle": True, "rows": 1},
                                {"workers": 1}, {"workers": 2}])
def test_tf_batches_staged_by_the_loader_give_the_same_step(train_file: Path, kw: dict) -> None:
    """``loader.stage = engine.stager()``: the loader's thread (in-memory cache, inline
    transform, or a worker pool) makes each batch's packed step tensors ahead; the engine
    then trains on ``batch.staged`` with the same losses as making them itself. ``rows``
    (``loader.row_stager = engine.row_stager``, in-memory cache): batches carry labels and
    row indices only, the step gathers its inputs (multi-value bags and weights included)
    from the engine's copy of the cache — the same losses again."""
    from easyrec.tf_backend.engine import RowIndices

    kw = dict(kw)
    rows = kw.pop("rows", 0)
    import tensorflow as tf

    from dataio.source import Source
    from easyrec.loader import BatchLoader
    from easyrec.restore import make_engine

    spec = _spec(train_file, ["trainer.backend=tf"])
    pipeline, _ = _batches(spec)

    def run(staged: bool) -> tuple[list[float], int]:
        tf.keras.utils.set_random_seed(0)
        engine = make_engine("tf", spec.model, pipeline, spec.root.trainer, "cpu", 100)
        src = Source(spec.root.data.train_path, columns=pipeline.required_columns(with_labels=True), read_rows=300)
        loader = BatchLoader(src, pipeline, 256, seed=7, transform_batches=2, **kw)
        loader.stage = engine.stager() if staged else None
        loader.row_stager = engine.row_stager if staged and rows else None
        losses, made = [], 0
        for _, batch in loader.epoch(1):
            made += batch.staged is not None
            assert isinstance(batch.staged, RowIndices) == bool(staged and rows)
            assert (not batch.sparse) == bool(staged and rows)  # labels only
            losses.append(engine.train_step(batch)[0])
        loader.close()
        return losses, made

    (want, none), (got, made) = run(False), run(True)
    assert none == 0 and made == len(got) == STEPS
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_tf_fast_step_call_gives_the_public_call(train_file: Path) -> None:
    """``TFEngine._call`` (one ``context.call_function`` with the captures listed once) returns
    what TF's public concrete-function call returns: the same (loss, predictions) structure
    and the same values over a few steps."""
    import tensorflow as tf

    from easyrec.restore import make_engine

    spec = _spec(train_file, ["trainer.backend=tf"])
    pipeline, batches = _batches(spec)
    runs = []
    for public in (False, True):
        tf.keras.utils.set_random_seed(0)
        engine = make_engine("tf", spec.model, pipeline, spec.root.trainer, "cpu", 100)
        if public:
            engine._call = lambda fn, tensors: fn(*tensors)
        runs.append([engine.train_step(b) for b in batches])
        assert (len(engine._calls) == 1) != public  # the fast path was taken (and only then)
    for (loss_a, preds_a), (loss_b, preds_b) in zip(*runs):
        assert loss_a == loss_b and preds_a.keys() == preds_b.keys()
        for k in preds_a:
            np.testing.assert_array_equal(preds_a[k], preds_b[k])
