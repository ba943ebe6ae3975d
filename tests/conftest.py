"""Shared test helpers: compose the real config tree, shrink it, run the real CLI, and small
MovieLens-shaped data (fixtures ``movielens_table`` and ``movielens_split``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]

# Shrinks any shipped experiment to a few seconds of CPU.
SHRINK = [
    "data.limit_train_rows=3000",
    "data.limit_eval_rows=2000",
    "data.batch_size=256",
    "data.eval_batch_size=1024",
    "trainer.epochs=1",
    "trainer.progress_bar=false",
    "trainer.plots=false",  # ~1 s of matplotlib per run; tests/trainer/test_run_report.py tests plots
    # one intra-op thread: a shrunk run's small ops gain nothing from a second thread, and on the
    # busy 2-core CI machine two threads spin against other processes (tests that need several
    # threads or processes, DDP and loader workers, set their own)
    "hardware.threads=1",
]


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved config dict exactly as `python -m trainer <overrides>` would see it."""
    from trainer.compose import compose_config

    return compose_config(overrides)


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m trainer ARGS` in a subprocess (the real entry point)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "trainer", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"trainer failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout[-4000:]}\n"
                             f"STDERR:\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Bundled datasets, prepared once per machine (the registry caches them)."""
    from dataio.datasets import ensure_dataset

    path = os.environ.get("LINGJIE_DATA_DIR")
    ensure_dataset("movielens-100k", path)
    ensure_dataset("adult", path)
    return Path(path) if path else Path.home() / ".cache" / "lingjie" / "datasets"


def movielens_like(n: int, seed: int = 0) -> pa.Table:
    """Rows with the prepared MovieLens columns and a learnable rating (no download needed).

    Tests take it as the ``movielens_table`` fixture; a subprocess script imports it."""
    import numpy as np
    import pyarrow as pa

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


@pytest.fixture(scope="session")
def movielens_table() -> Callable[..., pa.Table]:
    """A factory: ``movielens_table(n, seed=0)`` is n MovieLens-shaped rows, the same for the
    same (n, seed)."""
    return movielens_like


@pytest.fixture(scope="module")
def movielens_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(train, test)``: 3000 and 800 MovieLens-shaped rows (seeds 0 and 1) as Parquet files,
    written once per test module (read them, do not change them)."""
    import pyarrow.parquet as pq

    dirpath = tmp_path_factory.mktemp("movielens_split")
    train, test = dirpath / "train.parquet", dirpath / "test.parquet"
    pq.write_table(movielens_like(3000, 0), train)
    pq.write_table(movielens_like(800, 1), test)
    return train, test


@pytest.fixture
def one_torch_thread() -> Any:
    """One torch intra-op thread for the test (restored after): small convolutions and table
    ops on a busy 2-core machine run several times faster than with two competing threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
