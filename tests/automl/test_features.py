"""Feature generation: real featuretools DFS with cutoff times (no leakage) and a snippet that trains."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SHRINK, run_cli

pytest.importorskip("featuretools")


def _events(data_dir):
    import pandas as pd

    d = data_dir / "movielens-100k"
    return pd.concat([pd.read_parquet(d / "train.parquet"), pd.read_parquet(d / "test.parquet")],
                     ignore_index=True)


@pytest.mark.slow
def test_dfs_aggregates_use_only_strictly_earlier_events(data_dir):
    from automl.features.dfs import generate
    from automl.features.entities import ENTITY_SPECS

    ev = _events(data_dir)
    ts, user = ev["timestamp"].to_numpy(), ev["user_id"].to_numpy()
    # rows whose user rated something else in the very same second (before them in row order)
    same_second = np.flatnonzero((user[1:] == user[:-1]) & (ts[1:] == ts[:-1])) + 1
    rng = np.random.default_rng(0)
    rows = np.unique(np.concatenate([rng.choice(len(ev), 60, replace=False), same_second[:20], [0, 80000]]))
    res = generate(ev, ENTITY_SPECS["movielens-100k"], rows, max_depth=2, approximate=None)
    got = res.columns
    assert {"ft_users_count_ratings", "ft_users_mean_ratings_rating", "ft_items_count_ratings",
            "ft_items_mean_ratings_rating"} <= set(got.columns)
    rating, item = ev["rating"].to_numpy(float), ev["item_id"].to_numpy()
    for j, r in enumerate(rows):
        for key, arr in (("users", user), ("items", item)):
            before = (arr == arr[r]) & (ts < ts[r])  # by hand: strictly earlier events only
            assert got[f"ft_{key}_count_ratings"][j] == before.sum(), (r, key)
            mean = got[f"ft_{key}_mean_ratings_rating"][j]
            if before.any():
                assert mean == pytest.approx(rating[before].mean()), (r, key)
            else:
                assert np.isnan(mean)
    # a same-second rating is excluded: an inclusive cutoff would have counted it
    r = same_second[0]
    j = int(np.flatnonzero(rows == r)[0])
    inclusive = ((user == user[r]) & (ts <= ts[r]) & (np.arange(len(ev)) != r)).sum()
    assert got["ft_users_count_ratings"][j] < inclusive


@pytest.mark.slow
def test_generated_features_snippet_trains(tmp_path, data_dir):
    out = tmp_path / "gen"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "automl", "features", "+experiment=movielens_deepfm",
                           "--rows", "1200", "--max-features", "12", "--max-crosses", "2", "--out", str(out)],
                          cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pyarrow.parquet as pq

    train = pq.read_table(out / "train.parquet")
    orig = pq.read_table(data_dir / "movielens-100k" / "train.parquet").slice(0, 1200)
    assert train.num_rows == 1200 and pq.read_table(out / "test.parquet").num_rows == 300
    assert train.column("timestamp").equals(orig.column("timestamp"))  # same rows, same order
    assert "ft_users_mean_ratings_rating" in train.column_names
    assert (out / "automl" / "features_generated.yaml").exists()
    command = [ln for ln in proc.stdout.splitlines() if ln.startswith("train with: ")][-1]
    args = shlex.split(command.split(": ", 1)[1])[3:]  # drop "python -m trainer"
    run = run_cli([*args, *SHRINK, "data.limit_train_rows=1200", "data.limit_eval_rows=300",
                   "trainer.export.enabled=false", f"paths.output_root={tmp_path / 'runs'}"], cwd=tmp_path)
    run_dir = run.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    import json
    import pathlib

    cfg = (pathlib.Path(run_dir) / "config.yaml").read_text()
    assert "ft_users_mean_ratings_rating" in cfg and "cross_" in cfg
    auc = json.loads((pathlib.Path(run_dir) / "metrics.json").read_text())["final"]["eval/auc"]
    assert 0.0 < auc < 1.0  # trained end to end (1,200 rows, one epoch: quality is not the point)
