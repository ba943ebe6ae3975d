"""Dynamic tables in training: exact resume, export/serving, dynamic on vs off, the CLI."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import SHRINK, compose, run_cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops: 1 intra-op thread is faster here


def _spec(tmp_path: Path, dynamic: bool = True, tight: bool = True, background: bool = True,
          **edit: Any) -> Any:
    """The shipped dynamic experiment (or plain movielens_deepfm); ``tight``: squeezed to
    exercise capacity eviction, ttl, a three-tier item table and rebalancing in a few steps
    (in a background worker, or on the training thread: ``background=False``)."""
    from trainer.schema.validate import validate

    cfg = compose(["+experiment=movielens_deepfm_dynamic" if dynamic else "+experiment=movielens_deepfm",
                   f"paths.output_root={tmp_path}", "data.train_path=x.parquet"])
    if dynamic and tight:
        f = cfg["features"]
        f["user_id"]["dynamic"].update(capacity=60)
        f["item_id"]["dynamic"].update(ttl_steps=1, evict_every_steps=2, storage={
            "tiers": ["device", "host", "disk"], "capacity": [40, 80, 1000], "policy": "lru",
            "rebalance_every_steps": 2, "apply_after_steps": 2, "background": background,
            "path": str(tmp_path / "disk")})
        for k, v in edit.items():
            f[k]["dynamic"].update(v)
    return validate(cfg)


def _setup(spec: Any, table: pa.Table) -> tuple[Any, list[Any]]:
    from easyrec.data import make_pipeline

    pipeline = make_pipeline(spec).fit(table)
    batches = [pipeline.transform(table.slice(i, 200)) for i in range(0, table.num_rows, 200)]
    return pipeline, batches


def _engine(spec: Any, pipeline: Any, seed: int = 0) -> Any:
    from easyrec.restore import make_engine

    torch.manual_seed(seed)
    return make_engine("torch", spec.model, pipeline, spec.root.trainer, "cpu", total_steps=100)


def _assert_same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k not in ("stats", "tier_hits"):  # diagnostics, not training state
                _assert_same(a[k], b[k], f"{path}.{k}")
    else:
        assert a == b, path


def test_resume_is_exact(tmp_path: Path, movielens_table: Callable) -> None:
    from trainer.run_dir import RunDir

    spec = _spec(tmp_path)
    pipeline, batches = _setup(spec, movielens_table(2400, seed=3))
    straight = _engine(spec, pipeline)
    losses = [straight.train_step(b)[0] for b in batches]
    tables = [m.table for m in _dynamic(straight)]
    assert sum(t.stats["evicted_capacity"] for t in tables) > 0  # user_id overflows 60 rows
    assert sum(t.stats["evicted_ttl"] for t in tables) > 0
    assert sum(t.stats["moved"] for t in tables) > 0  # item rows changed tiers
    assert any(t.tier_rows()[-1] > 0 for t in tables)  # rows in the disk tier
    # the synchronous rebalance (storage.background: false) trains the very same model
    sync_spec = _spec(tmp_path, background=False)
    sync = _engine(sync_spec, pipeline)
    assert [sync.train_step(b)[0] for b in batches] == losses
    _assert_same(straight.model.state_dict(), sync.model.state_dict())

    first = _engine(spec, pipeline)
    for b in batches[:7]:
        first.train_step(b)
    # the item table's plan of step 6 is due at step 8: the save below has it in flight
    assert any(m.table._plan_steps == (6, 8) for m in _dynamic(first))
    run = RunDir(tmp_path / "run")
    run.create()
    path = first.save(run, "step-7", {"note": 1})
    resumed = _engine(spec, pipeline, seed=123)  # different init: restore must overwrite it
    assert resumed.restore(path) == {"note": 1}
    rest = [resumed.train_step(b)[0] for b in batches[7:]]
    assert rest == losses[7:]
    _assert_same(straight.model.state_dict(), resumed.model.state_dict())


def _dynamic(engine: Any) -> list[Any]:
    from easyrec.dynamic.module import dynamic_modules

    return dynamic_modules(engine.model)


@pytest.mark.parametrize("fmt", ["torchscript", "torch_export"])
def test_export_carries_the_table_and_unknown_ids_read_the_default(tmp_path: Path, fmt: str,
                                                                   movielens_table: Callable) -> None:
    from easyrec.serving import ExportedModel

    spec = _spec(tmp_path, zip_code={"export_min_count": 1})
    pipeline, batches = _setup(spec, movielens_table(1200, seed=3))
    engine = _engine(spec, pipeline)
    for b in batches:
        engine.train_step(b)
    rows = movielens_table(300, seed=9)
    engine.export(pipeline, pipeline.transform(rows.slice(0, 8), with_labels=False), tmp_path / fmt, fmt,
                  spec.task_types, {})
    served = ExportedModel(tmp_path / fmt).predict(rows)["like"]
    eager = engine.predict(pipeline.transform(rows, with_labels=False))["like"]
    np.testing.assert_allclose(served, eager, rtol=1e-5, atol=1e-6)
    # an id the table never saw and a null id both read the learned default vector
    unseen = rows.slice(0, 4).set_column(0, "user_id", pa.array([10 ** 12] * 4, pa.int64()))
    null = rows.slice(0, 4).set_column(0, "user_id", pa.array([None] * 4, pa.int64()))
    model = ExportedModel(tmp_path / fmt)
    np.testing.assert_allclose(model.predict(unseen)["like"], model.predict(null)["like"], rtol=1e-6)
    assert not np.allclose(model.predict(unseen)["like"], served[:4])


def test_export_min_count_prunes_the_serving_table(tmp_path: Path, movielens_table: Callable) -> None:
    from easyrec.dynamic.module import FrozenDynamicEmbedding, frozen_for_export

    spec = _spec(tmp_path, zip_code={"export_min_count": 40})  # 30 zip codes, ~40 rows each
    pipeline, batches = _setup(spec, movielens_table(1200, seed=3))
    engine = _engine(spec, pipeline)
    for b in batches:
        engine.train_step(b)
    user = [m for m in _dynamic(engine) if m.table_name == "zip_code" and m.dim == 16][0]
    counts = user.table.state_dict()
    expected = int((counts["has_row"] & (counts["count"] >= 40)).sum())
    assert 0 < expected < user.table.num_rows
    with frozen_for_export(engine.model):
        frozen = [m for m in engine.model.modules() if isinstance(m, FrozenDynamicEmbedding)
                  and "zip_code" in m.sparse_names and m.weight.shape[1] == 16][0]
        assert frozen.keys.numel() - 1 == expected
    assert user in list(engine.model.modules())  # swapped back after export


def test_short_training_with_dynamic_on_and_off_both_learn(tmp_path: Path, movielens_table: Callable) -> None:
    from trainer.loop import evaluate
    from easyrec.loader import BatchLoader

    results = {}
    for dynamic in (True, False):
        spec = _spec(tmp_path, dynamic, tight=False)
        pipeline, batches = _setup(spec, movielens_table(3000, seed=3))
        engine = _engine(spec, pipeline)
        for _ in range(3):
            for b in batches:
                engine.train_step(b)
        test = movielens_table(1500, seed=11)
        path = tmp_path / "test.parquet"
        pq.write_table(test, path)
        from dataio.source import Source

        loader = BatchLoader(Source(str(path), columns=test.column_names), pipeline, 500, shuffle=False)
        results[dynamic] = evaluate(engine, loader, spec.task_types, show_progress=False)["eval/auc"]
    assert results[True] > 0.6 and results[False] > 0.6, results
    assert abs(results[True] - results[False]) < 0.08, results


@pytest.mark.slow
def test_cli_trains_exports_and_predicts_the_shipped_experiment(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "run"
    run_cli(["+experiment=movielens_deepfm_dynamic", *SHRINK, "hardware.threads=1",
             f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["final"]["eval/auc"] > 0.55
    assert (run / "export" / "model.pt2").exists()
    state = json.loads((run / "feature_state.json").read_text())
    assert state["mappings"]["item_id"]["kind"] == "dynamic"
    out = tmp_path / "pred"
    run_cli(["+experiment=movielens_deepfm_dynamic", "trainer.mode=predict", "trainer.progress_bar=false",
             f"trainer.predict.checkpoint={run}", f"trainer.predict.output_path={out}/p.parquet",
             "data.limit_eval_rows=2000", f"hydra.run.dir={out}"], cwd=tmp_path)
    preds = pq.read_table(out / "p.parquet")
    # predict scores the whole eval file (data.limit_eval_rows limits evaluation only)
    assert preds.num_rows == pq.ParquetFile(data_dir / "movielens-100k" / "test.parquet").metadata.num_rows
    assert 0 < float(np.mean(preds.column("like").to_numpy())) < 1
