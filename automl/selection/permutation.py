"""Permutation importance on eval: shuffle one feature's input column(s), measure the AUC drop.

The model is restored from a checkpoint of the real trainer (``easyrec.restore.restore``),
the eval table is read once, and for each feature its input column(s) are permuted (one
fixed permutation per repeat, all columns of a combo together), transformed by the
checkpoint's own fitted pipeline and scored with ``engine.predict`` + ``trainer.metrics.auc``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from dataio.progress import progress

log = logging.getLogger("lingjie.automl")


def input_columns(config: Any, name: str) -> list[str]:
    cols = getattr(config, "columns", None)
    if cols:
        return list(cols)
    return [getattr(config, "column", None) or name]


def _auc(engine: Any, pipeline: Any, table: Any, task: str, label: str, batch_rows: int) -> float:
    from trainer.metrics import auc

    batch = pipeline.transform(table, with_labels=True)
    preds = [engine.predict(batch.slice(i, i + batch_rows))[task] for i in range(0, batch.size, batch_rows)]
    return auc(batch.labels[label], np.concatenate(preds))


def permutation_importance(checkpoint: Path, eval_path: str, features: list[str], limit_rows: int | None = None,
                           repeats: int = 1, seed: int = 0, batch_rows: int = 4096,
                           show_progress: bool = True) -> tuple[float, dict[str, float]]:
    """(base AUC, feature -> mean AUC drop when its columns are permuted); ``show_progress``:
    a bar over the features (each one re-scores the whole eval table ``repeats`` times)."""
    import pyarrow.parquet as pq

    from easyrec.restore import restore

    t0 = time.perf_counter()
    r = restore(Path(checkpoint))
    task = r.meta["config"]["model"]["tasks"][0]
    table = pq.read_table(eval_path)
    if limit_rows:
        table = table.slice(0, limit_rows)
    table = table.select(r.state.required_columns(with_labels=True))
    base = _auc(r.engine, r.state, table, task["name"], task["label"], batch_rows)
    rng = np.random.default_rng(seed)
    drops: dict[str, float] = {}
    for name in progress(features, desc="permutation importance", unit="feature", enabled=show_progress):
        cols = input_columns(r.state.configs[name], name)
        vals = []
        for _ in range(repeats):
            perm = rng.permutation(table.num_rows)
            shuffled = table
            for c in cols:
                i = shuffled.column_names.index(c)
                shuffled = shuffled.set_column(i, c, shuffled.column(c).take(perm))
            vals.append(base - _auc(r.engine, r.state, shuffled, task["name"], task["label"], batch_rows))
        drops[name] = float(np.mean(vals))
    log.info("permutation importance of %d features in %.1fs (base AUC %.4f)", len(features),
             time.perf_counter() - t0, base)
    return base, drops
