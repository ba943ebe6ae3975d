"""Dynamic embedding tables (easyrec.dynamic): index, admission, eviction, tiers, state."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from easyrec.dynamic.config import DynamicConfig, StorageConfig
from easyrec.dynamic.index import HashIndex
from easyrec.dynamic.keys import NULL_KEY, raw_keys
from easyrec.dynamic.rowopt import RowOptimizer
from easyrec.dynamic.table import DynamicTable


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops: 1 intra-op thread is faster here


def _table(dim: int = 4, opt: str | None = "adagrad", **kw) -> DynamicTable:
    storage = kw.pop("storage", None)
    cfg = DynamicConfig(**kw, **({"storage": storage} if storage else {}))
    cfg.check("t")
    t = DynamicTable("t", dim, cfg)
    if opt:
        t.set_optimizer(RowOptimizer(opt, dim))
    return t


def _see(t: DynamicTable, keys: list[int], steps: int = 1) -> None:
    """``steps`` training steps in which the batch holds ``keys`` (with repeats)."""
    for _ in range(steps):
        u, c = torch.unique(torch.tensor(keys, dtype=torch.int64), return_counts=True)
        t.observe(u, c)
        t.end_step()


def _has_row(t: DynamicTable, keys: list[int]) -> list[bool]:
    q = torch.tensor(keys, dtype=torch.int64)
    found, _ = t.lookup(q)
    out = [False] * len(keys)
    for i in found.tolist():
        out[i] = True
    return out


def test_index_matches_a_dict_through_inserts_deletes_and_rebuilds() -> None:
    rng = np.random.default_rng(0)
    idx = HashIndex({"v": (torch.int64, -1)}, "cpu", capacity=16)
    oracle: dict[int, int] = {}
    for round_ in range(30):
        fresh = np.unique(rng.integers(-2**62, 2**62, 300))
        fresh = np.array([k for k in fresh if k not in oracle], dtype=np.int64)
        slots = idx.insert(torch.from_numpy(fresh))
        idx.cols["v"][slots] = torch.from_numpy(fresh) // 7
        oracle.update({int(k): int(k) // 7 for k in fresh})
        if round_ % 3 == 2:  # delete a third of the live keys
            gone = rng.choice(np.array(list(oracle)), len(oracle) // 3, replace=False)
            idx.delete(idx.find(torch.from_numpy(gone)))
            for k in gone:
                del oracle[int(k)]
    assert idx.live == len(oracle)
    keys = np.array(list(oracle), dtype=np.int64)
    absent = rng.integers(-2**62, 2**62, 500)
    absent = absent[~np.isin(absent, keys)]
    got = idx.find(torch.from_numpy(np.concatenate([keys, absent])))
    assert (got[len(keys):] == -1).all()
    assert torch.equal(idx.cols["v"][got[:len(keys)]], torch.from_numpy(keys) // 7)
    assert len(set(got[:len(keys)].tolist())) == len(keys)


def test_raw_keys_integers_are_their_own_key_strings_are_hashed_nulls_are_null() -> None:
    ints = raw_keys(pa.array([5, None, 1 << 40], pa.int64()))
    assert ints.tolist() == [5, NULL_KEY, 1 << 40]
    text = raw_keys(pa.array(["5", " 00042 ", "abc", None, "abc"]))
    assert text[0] == 5 and text[1] == 42 and text[3] == NULL_KEY and text[2] == text[4]
    assert text[2] not in (5, 42, NULL_KEY)
    assert raw_keys(pa.array([5.0, None])).tolist() == [5, NULL_KEY]  # float column of ids


@pytest.mark.parametrize("admission", ["exact", "bloom"])
def test_min_count_admission(admission: str) -> None:
    t = _table(min_count=3, admission=admission, bloom_counters=4096)
    _see(t, [1, 2, 2])  # 1 seen once, 2 twice
    assert _has_row(t, [1, 2]) == [False, False]
    _see(t, [1, 2])  # 1: 2, 2: 3
    assert _has_row(t, [1, 2]) == [False, True]
    _see(t, [1])
    assert _has_row(t, [1, 2]) == [True, True]
    assert t.num_rows == 2
    if admission == "bloom":  # no per-id slot before admission
        assert t.index.live == 2
    else:
        _see(t, [7])
        assert t.index.live == 3 and t.num_rows == 2  # 7 is a counted candidate without row


def test_null_key_is_never_admitted() -> None:
    t = _table(min_count=1)
    _see(t, [NULL_KEY, 3])
    assert _has_row(t, [NULL_KEY, 3]) == [False, True]


def test_lfu_capacity_eviction_drops_the_least_seen() -> None:
    t = _table(min_count=1, capacity=100, policy="lfu")
    hot = list(range(90))
    _see(t, hot * 3)  # seen 3 times each
    _see(t, list(range(1000, 1010)))  # 10 cold ids: table full (100)
    _see(t, list(range(2000, 2005)))  # 5 more: evict 5 + 1% slack = 6 of the least seen
    assert t.num_rows == 99
    assert all(_has_row(t, hot))
    cold = _has_row(t, list(range(1000, 1010)))
    assert cold == [False] * 6 + [True] * 4  # equal counts: older (then smaller key) first
    assert all(_has_row(t, list(range(2000, 2005))))
    assert t.stats["evicted_capacity"] == 6


def test_lru_capacity_eviction_drops_the_least_recent() -> None:
    t = _table(min_count=1, capacity=20, policy="lru")
    _see(t, list(range(10)) * 5)  # step 0: seen often, long ago
    _see(t, list(range(10, 20)))  # step 1: seen once, recently
    _see(t, [100])  # full: evicts 1 + slack 1 = the two least recent: keys 0 and 1
    assert _has_row(t, [0, 1, 2, 19, 100]) == [False, False, True, True, True]


def test_ttl_evicts_rows_and_candidates_not_seen_recently() -> None:
    t = _table(min_count=2, ttl_steps=3, evict_every_steps=1)
    _see(t, [1, 1, 2])  # 1 admitted, 2 a candidate
    _see(t, [5, 5])
    assert t.num_rows == 2 and t.index.live == 3
    _see(t, [5, 5], steps=3)  # 1 and 2 unseen for > 3 steps
    assert _has_row(t, [1, 5]) == [False, True] and t.index.live == 1
    assert t.stats["evicted_ttl"] == 1  # rows counted (the candidate has none)


def test_l2_threshold_evicts_small_rows() -> None:
    t = _table(min_count=1, l2_threshold=0.5, evict_every_steps=1, init_std=1.0, dim=8)
    _see(t, list(range(50)))
    keys = torch.arange(50)
    found, rows = t.lookup(keys)
    norms = rows.norm(dim=1)
    small = set(keys[found][norms < 0.5].tolist())
    # shrink one row below the threshold with an sgd-like push through the optimizer
    t.set_optimizer(RowOptimizer("sgd", 8))
    t.apply_gradients(torch.tensor([7]), rows[7:8] * 0.95 / 0.1, lr=0.1)
    small.add(7)
    t.sweep()
    assert _has_row(t, sorted(small)) == [False] * len(small)
    assert t.num_rows == 50 - len(small)


def test_rows_move_between_tiers_with_their_optimizer_state(tmp_path) -> None:
    storage = StorageConfig(tiers=["device", "host", "disk"], capacity=[10, 20, 100],
                            policy="lfu", rebalance_every_steps=1000, path=str(tmp_path))
    t = _table(min_count=1, storage=storage)
    _see(t, list(range(100)))  # 100 rows: 10 + 20 + 70 (fill order)
    assert t.tier_rows() == [10, 20, 70]
    assert list(tmp_path.iterdir())  # the memory-mapped file
    keys = torch.arange(100)
    grads = torch.randn(100, 4)
    t.apply_gradients(keys, grads, lr=0.1)  # adagrad state = grads^2
    found, before = t.lookup(keys)
    state_before = t.state_dict()
    hot = list(range(60, 75))  # make 15 ids the hottest
    _see(t, hot * 5)
    t.rebalance()
    tiers = t.index.cols["tier"][t.index.find(keys)]
    assert int((tiers[60:75] == 0).sum()) == 10  # the device tier holds 10 of the hottest
    assert int((tiers[60:75] <= 1).sum()) == 15  # all 15 hottest in the two memory tiers
    assert t.tier_rows() == [10, 20, 70] and t.stats["moved"] > 0
    _, after = t.lookup(keys)
    assert torch.equal(before, after)  # values moved intact
    state_after = t.state_dict()
    assert torch.equal(state_before["opt_state"], state_after["opt_state"])  # state moved too
    assert torch.allclose(state_after["opt_state"], grads ** 2)
    found, _ = t.lookup(torch.tensor(hot), counts=torch.ones(15, dtype=torch.int64))
    assert t.hit_rate() == pytest.approx(10 / 15)


def test_state_round_trip_rebuilds_an_equal_table(tmp_path) -> None:
    storage = StorageConfig(tiers=["device", "disk"], capacity=[5, 50], path=str(tmp_path))
    t = _table(min_count=2, storage=storage, opt="adam")
    rng = np.random.default_rng(1)
    for _ in range(6):
        _see(t, rng.integers(0, 40, 60).tolist())
        keys = torch.arange(40)
        found, _ = t.lookup(keys)
        t.apply_gradients(keys[found], torch.randn(found.numel(), 4), 0.05)
    state = t.state_dict()
    u = _table(min_count=2, storage=storage, opt="adam")
    u.load_state_dict(state)
    again = u.state_dict()
    for k in ("keys", "count", "last", "has_row", "values", "opt_state", "pool"):
        assert torch.equal(state[k], again[k]), k
    assert u.step == t.step and u.num_rows == t.num_rows and u.tier_rows() == t.tier_rows()


def test_export_prunes_by_count() -> None:
    t = _table(min_count=1, opt=None)
    _see(t, [1, 1, 1, 2])
    keys, values = t.export(min_count=2)
    assert keys.tolist() == [1] and values.shape == (1, 4)


@pytest.mark.parametrize("override, path, words", [
    (["features.user_id.vocab={min_count: 1}"], "features.user_id.dynamic",
     "set only one of hash_buckets, vocab, num_buckets, dynamic"),
    (["features.item_id.dynamic.storage.tiers=[host,device]"], "features.item_id.dynamic.storage.tiers",
     "fastest first"),
    (["features.item_id.dynamic.storage.capacity=[10]"], "features.item_id.dynamic.storage.capacity",
     "one capacity per tier"),
    (["features.zip_code.dynamic.min_count=300"], "features.zip_code.dynamic.min_count", "bloom admission"),
    (["features.user_id.dynamic.polcy=lru"], "features.user_id.dynamic.polcy", "did you mean: policy"),
    (["trainer.backend=tf"], "features.user_id.dynamic", "torch backend only"),
])
def test_config_errors_name_the_key_and_the_fix(override: list[str], path: str, words: str) -> None:
    from tests.conftest import compose
    from lingjie.errors import ConfigError
    from trainer.schema.validate import validate

    cfg = compose(["+experiment=movielens_deepfm_dynamic", "data.train_path=x.parquet"])
    for o in override:  # apply like the CLI would (the experiment's dynamic keys are plain dicts)
        key, value = o.split("=", 1)
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        import yaml

        node[leaf] = yaml.safe_load(value)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert f"'{path}'" in str(err.value) and words in str(err.value), str(err.value)


# ---- background rebalance (storage.background) --------------------------------------------

def _layout_ok(t: DynamicTable) -> None:
    """Every row sits at a distinct position of its tier, and the tiers' counts agree."""
    rows = t._row_slots()
    tier = t.index.cols["tier"][rows].to(torch.int64)
    pos = t.index.cols["row"][rows]
    assert rows.numel() == t.num_rows
    for i, store in enumerate(t.tiers):
        mine = pos[tier == i]
        assert mine.numel() == store.used, (i, mine.numel(), store.used)
        assert torch.unique(mine).numel() == mine.numel(), f"tier {i}: two rows share a position"
        if store.capacity is not None:
            assert store.used <= store.capacity


def _drive(t: DynamicTable, steps: int, seed: int = 5, check=None) -> None:
    """A training-like loop: lookup, row update with seeded gradients, count, end the step."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        raw = (rng.zipf(1.3, 300) % 260).astype(np.int64)
        u, c = torch.unique(torch.from_numpy(raw), return_counts=True)
        found, _ = t.lookup(u, c)
        t.apply_gradients(u[found], torch.randn(found.numel(), t.dim, generator=gen), 0.05)
        t.observe(u, c)
        t.end_step()
        if check is not None:
            check(t)


def _tiered(tmp_path, background: bool, lag: int = 3, **kw) -> DynamicTable:
    storage = StorageConfig(tiers=["device", "host", "disk"], capacity=[15, 30, 200], policy="lfu",
                            rebalance_every_steps=4, background=background, apply_after_steps=lag,
                            path=str(tmp_path))
    return _table(min_count=1, capacity=200, policy="lru", ttl_steps=4, evict_every_steps=2, seed=1,
                  storage=storage, **kw)


def test_background_rebalance_gives_the_synchronous_rows_and_loses_no_update(tmp_path) -> None:
    sync, bg, again = (_tiered(tmp_path, False), _tiered(tmp_path, True), _tiered(tmp_path, True))
    _drive(sync, 41)
    _drive(bg, 41, check=_layout_ok)
    _drive(again, 41)
    a, b = sync.state_dict(), bg.state_dict()
    for k in ("keys", "count", "last", "has_row", "values", "opt_state"):
        assert torch.equal(a[k], b[k]), k  # no update lost, none applied twice
    assert bg.stats["moved"] > 0 and sync.stats["moved"] > 0  # rows still change tiers
    assert bg.stats["move_reread"] > 0  # rows updated after their snapshot were moved ...
    assert bg.stats["move_dropped"] > 0  # ... and rows evicted after it were left alone
    assert bg.stats["evicted_capacity"] > 0 and bg.stats["evicted_ttl"] > 0
    # the plan of step s lands at step s + apply_after_steps whatever the thread's speed
    for name in ("tier", "row"):
        assert torch.equal(bg.index.cols[name], again.index.cols[name]), name


def test_background_plan_in_flight_keeps_saves_exact(tmp_path) -> None:
    import threading

    sync, bg = _tiered(tmp_path, False, lag=4), _tiered(tmp_path, True, lag=4)
    _drive(sync, 14)
    _drive(bg, 14)  # snapshot at step 12, due at step 16
    assert bg._plan_steps == (12, 16)
    saved = bg.state_dict()
    assert not [th for th in threading.enumerate() if th.name.startswith("dynamic table")]
    ref = sync.state_dict()
    for k in ("keys", "count", "last", "has_row", "values", "opt_state"):
        assert torch.equal(saved[k], ref[k]), k
    resumed = _tiered(tmp_path, True, lag=4)
    resumed.load_state_dict(saved)
    assert resumed._plan_steps is None  # a reload drops the plan, re-placing hottest-first
    for t in (bg, resumed, sync):
        _drive(t, 10, seed=9)
        _layout_ok(t)
    final = [t.state_dict() for t in (bg, resumed, sync)]
    for k in ("keys", "count", "last", "has_row", "values", "opt_state"):
        assert torch.equal(final[0][k], final[1][k]) and torch.equal(final[0][k], final[2][k]), k


def test_background_worker_errors_surface_on_the_training_thread(tmp_path, monkeypatch) -> None:
    t = _tiered(tmp_path, True, lag=2)

    def broken(snap, apply_step):
        raise ValueError("disk tier unreadable")

    monkeypatch.setattr(t, "_make_plan", broken)
    _drive(t, 5)  # snapshot at step 4 (the worker fails at once), due at step 6
    with pytest.raises(RuntimeError, match=r"tier rebalance of step 4 failed .*ValueError: disk tier "
                                           r"unreadable.*storage.background: false"):
        _drive(t, 1)
