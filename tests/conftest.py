"""Shared test helpers: compose the real config tree, shrink it, run the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Shrinks any shipped experiment to a few seconds of CPU.
SHRINK = [
    "data.limit_train_rows=3000",
    "data.limit_eval_rows=2000",
    "data.batch_size=256",
    "data.eval_batch_size=1024",
    "trainer.epochs=1",
    "trainer.progress_bar=false",
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
