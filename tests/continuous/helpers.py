"""What the delta-export tests share: a tiny run with deltas whose chain is kept aside (the
:class:`KeepExport` callback copies ``<run>/export`` when the fit ends, before the final full
export replaces it) and rows of the MovieLens test split."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from trainer.callbacks import Callback

TINY = ["data.limit_train_rows=2000", "data.limit_eval_rows=300", "data.batch_size=256", "trainer.epochs=1",
        "hardware.threads=1", "trainer.progress_bar=false", "trainer.plots=false", "logger=none",
        "trainer.export.delta_every_steps=2", "trainer.export.full_every_deltas=100"]


def train_with_deltas(tmp: Path, experiment: str, *extra: str) -> tuple[Path, Path]:
    """(run dir, copy of its export taken when the fit ended: the base + every delta)."""
    run, kept = tmp / "run", tmp / "kept"
    keep = f"+trainer.callbacks=[{{_target_: tests.continuous.helpers.KeepExport, dest: '{kept}'}}]"
    run_cli([f"+experiment={experiment}", *TINY, *extra, keep, f"hydra.run.dir={run}"], cwd=tmp)
    return run, kept


def movielens_rows(n: int = 1500) -> Any:
    """The first ``n`` rows of the MovieLens-100k test split (a pyarrow Table)."""
    import pyarrow.parquet as pq

    from trainer.compose import compose_config

    data_dir = Path(compose_config(["+experiment=movielens_deepfm"])["paths"]["data_dir"])
    return pq.read_table(data_dir / "movielens-100k" / "test.parquet").slice(0, n)


class KeepExport(Callback):
    def __init__(self, dest: str) -> None:
        self.dest = Path(dest)

    def on_fit_end(self, loop: Any) -> None:
        shutil.copytree(loop.run.export, self.dest)
