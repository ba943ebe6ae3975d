"""trainer.init_from: a new run starts from another run's weights, vocabulary rows by value.

In-process tests build two real pipelines (fitted on different days: the vocabularies differ)
and real DeepFM models; the CLI tests run the real trainer twice (day 1, then day 2 warm
started from it)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lingjie.errors import ConfigError
from tests.conftest import SHRINK, compose, movielens_like, run_cli


def _day(lo: int, hi: int, n: int, seed: int) -> pa.Table:
    """MovieLens-shaped rows whose users are lo..hi-1 (a day's vocabulary)."""
    t = movielens_like(n, seed)
    users = np.random.default_rng(seed).integers(lo, hi, n)
    return t.set_column(t.schema.get_field_index("user_id"), "user_id", pa.array(users))


def _pipeline_and_model(table: pa.Table, seed: int):
    from easyrec.data import make_pipeline
    from easyrec.models.specs import build_model
    from easyrec.schema import build_model_config, validate

    spec = validate(compose(["+experiment=movielens_deepfm"]))
    pipeline = make_pipeline(spec)
    pipeline.fit([table])
    torch.manual_seed(seed)
    cfg = build_model_config(compose(["+experiment=movielens_deepfm"])["model"], "torch")
    return pipeline, build_model(cfg, pipeline.feature_infos(), backend="torch")


def _row(model, pipeline, table: str, value: str, collection: str = "embedding") -> torch.Tensor:
    from easyrec.warm_start import table_slots

    param, base, _, _ = table_slots(model)[f"{collection}.{table}"]
    row = 1 + pipeline.mappings[table].vocabulary.index(value)
    return model.state_dict()[param][base + row]


def _warm(target, source, new_p, old_p, mapping=None, strict=False):
    from easyrec.warm_start import plan_warm_start, table_slots
    from trainer.warm_start import apply_plan, check_plan

    plan = plan_warm_start(target, source, new_p, old_p, mapping or {})
    keys = list(table_slots(source)) + list(source.state_dict())
    check_plan(plan, strict, mapping or {}, keys)
    apply_plan(target, plan, source.state_dict())
    return plan


def test_same_value_same_vector_after_a_vocabulary_change() -> None:
    old_p, source = _pipeline_and_model(_day(1, 120, 2000, 0), seed=0)
    new_p, target = _pipeline_and_model(_day(60, 200, 2000, 1), seed=1)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    plan = _warm(target, source, new_p, old_p)
    old_users, new_users = set(old_p.mappings["user_id"].vocabulary), new_p.mappings["user_id"].vocabulary
    shared = [u for u in new_users if u in old_users]
    born = [u for u in new_users if u not in old_users]
    assert shared and born
    for u in shared[:20]:  # a user of both days keeps yesterday's vector, wherever its row moved
        assert torch.equal(_row(target, new_p, "user_id", u), _row(source, old_p, "user_id", u))
        assert torch.equal(_row(target, new_p, "user_id", u, "wide.emb"), _row(source, old_p, "user_id", u, "wide.emb"))
    from easyrec.warm_start import table_slots

    param, base, _, _ = table_slots(target)["embedding.user_id"]
    for u in born[:20]:  # a new user keeps its fresh initialisation
        row = base + 1 + new_p.mappings["user_id"].vocabulary.index(u)
        assert torch.equal(target.state_dict()[param][row], fresh[param][row])
    counts = plan.tables["embedding.user_id"]
    assert counts == {"remapped by value": len(shared), "new": len(born),
                      "dropped": len(old_users) - len(shared)}
    dense = [k for k in target.state_dict() if "fused" not in k]
    assert dense
    for k in dense:
        assert torch.equal(target.state_dict()[k], source.state_dict()[k]), k


def test_map_skips_and_renames_and_mismatches_are_one_line() -> None:
    old_p, source = _pipeline_and_model(_day(1, 120, 1500, 0), seed=0)
    new_p, target = _pipeline_and_model(_day(60, 200, 1500, 1), seed=1)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    plan = _warm(target, source, new_p, old_p, {"*.user_id": None})
    assert "embedding.user_id" in plan.fresh and "wide.emb.user_id" in plan.fresh
    u = new_p.mappings["user_id"].vocabulary[0]
    assert torch.equal(_row(target, new_p, "user_id", u), _row_of(fresh, target, new_p, "user_id", u))
    # renaming a table onto another of the same width carries its rows by value
    _, target2 = _pipeline_and_model(_day(60, 200, 1500, 1), seed=1)
    _warm(target2, source, new_p, old_p, {"*.occupation": None, "*.gender": "*.occupation"})
    with pytest.raises(ConfigError) as err:  # a typo in the map is named, not ignored
        _warm(target2, source, new_p, old_p, {"*.no_such_table": None})
    assert "no_such_table" in str(err.value)
    with pytest.raises(ConfigError) as err:  # strict: the skipped tables are missing
        _warm(target2, source, new_p, old_p, {"*.user_id": None}, strict=True)
    assert "embedding.user_id" in str(err.value) and "\n" not in str(err.value)


def _row_of(state, model, pipeline, table, value):
    from easyrec.warm_start import table_slots

    param, base, _, _ = table_slots(model)[f"embedding.{table}"]
    return state[param][base + 1 + pipeline.mappings[table].vocabulary.index(value)]


def test_hash_tables_that_change_size_are_refused_naming_them() -> None:
    from easyrec.warm_start import row_plan
    from easyrec.features.id_mapping import HashMapping

    assert "rows" in row_plan(HashMapping(100), HashMapping(200), 100, 200)
    src, dst, counts = row_plan(HashMapping(100), HashMapping(100), 100, 100)
    assert np.array_equal(src, dst) and counts == {"copied": 100}


def _write_days(root: Path) -> tuple[Path, Path, Path]:
    paths = []
    for i, (lo, hi) in enumerate([(1, 120), (60, 200), (100, 260)]):
        p = root / f"day{i}.parquet"
        pq.write_table(_day(lo, hi, 2500, i), p)
        paths.append(p)
    return tuple(paths)


@pytest.mark.slow
def test_cli_day_two_starts_from_day_one(tmp_path: Path) -> None:
    d1, d2, d3 = _write_days(tmp_path)
    base = ["+experiment=movielens_deepfm", *SHRINK, "hardware.threads=1", f"paths.output_root={tmp_path}/out",
            "data.dataset=null"]
    a, b = tmp_path / "out" / "movielens_deepfm" / "a", tmp_path / "out" / "movielens_deepfm" / "b"
    run_cli([*base, f"data.train_path={d1}", f"data.eval_path={d2}", f"hydra.run.dir={a}"], tmp_path)
    # day 2: lr ~ 0 so the checkpoint after one step still holds the warm-started rows
    run_cli([*base, f"data.train_path={d2}", f"data.eval_path={d3}", f"hydra.run.dir={b}", "trainer.max_steps=1",
             f"trainer.init_from={a}", "trainer.optimizer.sparse.lr=1e-12", "trainer.optimizer.sparse.weight_decay=0",
             "trainer.optimizer.dense.lr=1e-12", "trainer.init_optimizer=true"], tmp_path)
    from easyrec.restore import restore
    from trainer.run_dir import RunDir

    ra, rb = restore(RunDir(a).latest_checkpoint()), restore(RunDir(b).latest_checkpoint())
    old_p, new_p = ra.state, rb.state
    assert old_p.mappings["user_id"].vocabulary != new_p.mappings["user_id"].vocabulary  # refit on day 2
    shared = [u for u in new_p.mappings["user_id"].vocabulary if u in set(old_p.mappings["user_id"].vocabulary)]
    for collection in ("embedding", "wide.emb"):
        for u in shared[:25]:
            assert torch.allclose(_row(ra.engine.model, old_p, "user_id", u, collection),
                                  _row(rb.engine.model, new_p, "user_id", u, collection), atol=1e-6), u
    metrics = json.loads((b / "metrics.json").read_text())
    report = metrics["init_from"]
    assert report["source"].startswith(str(a)) and report["optimizer_states"] > 0
    assert report["tables"]["embedding.user_id"]["remapped by value"] == len(shared)
    # features_from=init keeps day 1's vocabularies; latest = the newest finished run (b)
    c = tmp_path / "out" / "movielens_deepfm" / "c"
    run_cli([*base, f"data.train_path={d3}", f"data.eval_path={d3}", f"hydra.run.dir={c}", "trainer.max_steps=2",
             "trainer.init_from=latest", "trainer.features_from=init", "experiment_name=movielens_deepfm"], tmp_path)
    c_state = json.loads((c / "feature_state.json").read_text())
    assert c_state == json.loads((b / "feature_state.json").read_text())
    assert json.loads((c / "metrics.json").read_text())["init_from"]["source"].startswith(str(b))


def test_bad_sources_are_one_clear_error(tmp_path: Path) -> None:
    from easyrec.recipe import RecRecipe
    from easyrec.schema import validate
    from trainer.lifecycle import init_source
    from trainer.run_dir import RunDir
    from trainer.warm_start import resolve_init_source

    with pytest.raises(ConfigError, match="does not exist"):
        resolve_init_source(str(tmp_path / "nowhere"), str(tmp_path), "x", tmp_path / "run")
    with pytest.raises(ConfigError, match="no finished run of experiment 'x'"):
        resolve_init_source("latest", str(tmp_path), "x", tmp_path / "run")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        resolve_init_source(str(tmp_path / "empty_run"), str(tmp_path), "x", tmp_path / "run")
    tf = RecRecipe(validate(compose(["+experiment=movielens_deepfm", "trainer.backend=tf",
                                     f"trainer.init_from={tmp_path}"])))
    with pytest.raises(ConfigError, match="trainer.backend=torch"):
        init_source(tf, RunDir(tmp_path / "run"))


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(["+experiment=movielens_deepfm", *SHRINK, f"paths.output_root={tmp_path}/out",
                    f"trainer.init_from={tmp_path}/nowhere"], tmp_path, check=False)
    assert proc.returncode != 0 and "trainer.init_from" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_dynamic_tables_come_over_with_their_keys(tmp_path: Path) -> None:
    from easyrec.dynamic.module import dynamic_modules
    from easyrec.restore import restore
    from trainer.run_dir import RunDir

    d1, d2, _ = _write_days(tmp_path)
    base = ["+experiment=movielens_deepfm_dynamic", *SHRINK, "hardware.threads=1", f"paths.output_root={tmp_path}/out",
            "data.dataset=null", f"data.eval_path={d2}"]
    a, b = tmp_path / "a", tmp_path / "b"
    run_cli([*base, f"data.train_path={d1}", f"hydra.run.dir={a}"], tmp_path)
    run_cli([*base, f"data.train_path={d2}", f"hydra.run.dir={b}", f"trainer.init_from={a}", "trainer.max_steps=1",
             "trainer.optimizer.sparse.lr=1e-12", "trainer.optimizer.sparse.weight_decay=0"], tmp_path)
    tables = json.loads((b / "metrics.json").read_text())["init_from"]["tables"]
    assert tables["dynamic.user_id"]["keys copied with counters"] > 50
    before = {m.table.name: m.table.export() for m in dynamic_modules(restore(RunDir(a).latest_checkpoint()).engine.model)}
    after = {m.table.name: m.table.export() for m in dynamic_modules(restore(RunDir(b).latest_checkpoint()).engine.model)}
    keys_a, rows_a = before["user_id"]
    keys_b, rows_b = after["user_id"]
    pos = {int(k): i for i, k in enumerate(keys_b)}
    common = [i for i, k in enumerate(keys_a.tolist()) if k in pos]
    assert len(common) > 50  # day 1's users are still there, with their vectors
    for i in common[:30]:
        assert torch.allclose(rows_a[i], rows_b[pos[int(keys_a[i])]], atol=1e-6)


def test_a_remote_run_is_fetched_into_the_new_run(tmp_path: Path) -> None:
    import fsspec

    from trainer.warm_start import resolve_init_source

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/bucket/runs/day1/checkpoints/epoch-0001.pt", b"step")
    fs.pipe_file("/bucket/runs/day1/checkpoints/best.pt", b"best")
    got = resolve_init_source("memory://bucket/runs/day1", str(tmp_path), "x", tmp_path / "run")
    assert got == tmp_path / "run" / "init_from" / "best.pt" and got.read_bytes() == b"best"
    got = resolve_init_source("memory://bucket/runs/day1/checkpoints/epoch-0001.pt", str(tmp_path), "x",
                              tmp_path / "run")
    assert got.read_bytes() == b"step"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_init_source("memory://bucket/runs/day9", str(tmp_path), "x", tmp_path / "run")
