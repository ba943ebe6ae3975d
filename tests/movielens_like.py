"""Small MovieLens-shaped tables written by tests (no download needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def movielens_like(n: int, seed: int = 0) -> pa.Table:
    """Rows with the prepared MovieLens columns and a learnable rating."""
    rng = np.random.default_rng(seed)
    u = rng.integers(1, 200, n)
    i = rng.integers(1, 500, n)
    taste = np.sin(u * 0.7) + np.cos(i * 0.3)
    rating = np.clip(np.round(3 + taste + rng.normal(0, 0.7, n)), 1, 5).astype(np.int64)
    hist = [list(rng.integers(1, 500, rng.integers(0, 10))) for _ in range(n)]
    return pa.table({
        "user_id": u, "item_id": i, "rating": rating, "timestamp": np.arange(n, dtype=np.int64),
        "gender": np.where(u % 2 == 0, "M", "F"), "age": (u % 50 + 15).astype(np.int64),
        "occupation": np.array(["artist", "doctor", "other"])[u % 3], "zip_code": (u % 30).astype(str),
        "genres": np.array(["Action|Comedy", "Drama", "Comedy|Romance|Drama"])[i % 3],
        "release_year": (1950 + i % 50).astype(np.int64),
        "hist_item_id": pa.array(hist, type=pa.list_(pa.int64())),
    })


def write_split(dirpath: Path, n_train: int = 3000, n_eval: int = 800) -> tuple[Path, Path]:
    dirpath.mkdir(parents=True, exist_ok=True)
    train, test = dirpath / "train.parquet", dirpath / "test.parquet"
    pq.write_table(movielens_like(n_train, 0), train)
    pq.write_table(movielens_like(n_eval, 1), test)
    return train, test
