"""trainer.mode=predict for text models: named predictions of every good row, in input order.

``restored`` is a :class:`trainer.lifecycle.Restored` whose ``state`` is the
:class:`easynlp.text_state.TextState` and whose ``spec`` is the training-time spec.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes
from easynlp.inputs import make_encoder, make_loader, text_columns
from easynlp.schema import NLPRunSpec
from lingjie.errors import ConfigError
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie.nlp")


def prediction_columns(spec: NLPRunSpec, labels: list[str], probs: list[Any]) -> dict[str, list[Any]]:
    """Named predictions of a list of per-row outputs (class probabilities or tag ids)."""
    import numpy as np

    name = f"{spec.task_name}_pred"  # beside a passthrough copy of the true label, if asked for
    if spec.is_token:
        return {name: [[labels[int(t)] for t in row] for row in probs]}
    p = np.asarray(probs, dtype=np.float32).reshape(len(probs), -1)
    best = p.argmax(1) if len(p) else np.zeros(0, dtype=np.int64)
    return {name: [labels[int(i)] for i in best], f"{spec.task_name}_prob": p.max(1).tolist() if len(p) else [],
            f"{spec.task_name}_probs": p.tolist()}


def predict_rows(restored: Any, path: str, extra_columns: list[str] | None = None,
                 ) -> tuple[dict[str, list[Any]], Any, dict]:
    """Predictions for every good row of ``path`` in input order, those rows (a table with the
    text and ``extra_columns``), and the source's stats (bad rows)."""
    import numpy as np
    import pyarrow as pa

    spec, engine = restored.spec, restored.engine
    encoder = make_encoder(spec, restored.state)
    loader = make_loader(spec, encoder, path, train=False, with_labels=False, padding="longest",
                         extra_columns=extra_columns)
    raw: list[Any] = []
    kept: list[Any] = []
    # pools as the loader cuts them; the kept rows of each pool (bad rows dropped) in order
    pools = loader.source.iter_batches(loader.pool_rows, limit_rows=spec.root.data.limit_eval_rows)
    for pool_no, rb in enumerate(pools):
        enc = encoder.encode(rb, False, loader.on_bad)
        for batch in loader.cut_pool(0, pool_no, enc):
            out = engine.predict(batch)[spec.task_name]
            raw.extend(list(out) if isinstance(out, list) else list(np.asarray(out)))
        kept.append(rb.take(pa.array(enc.rows)))
    table = pa.Table.from_batches(kept) if kept else None
    return prediction_columns(spec, restored.state.labels, raw), table, loader.source.stats


def predict_to_file(restored: Any, run: RunDir) -> Path:
    """trainer.mode=predict: predictions (+ passthrough columns) as parquet or CSV."""
    import pyarrow as pa

    spec = restored.spec
    p = spec.root.trainer.predict
    path = p.input_path or spec.root.data.eval_path
    if not path:
        raise ConfigError("trainer.predict.input_path", "no rows to predict (nor data.eval_path)")
    extra = [c for c in p.passthrough if c not in text_columns(spec, with_labels=False)]
    cols, rows, stats = predict_rows(restored, path, extra)
    table = pa.table({**{c: rows[c] if rows is not None else pa.array([]) for c in p.passthrough}, **cols})
    out = Path(p.output_path) if p.output_path else run.root / f"predictions.{p.format}"
    atomic_write_bytes(out, _table_bytes(spec, table, p.format))
    log.info("%d rows predicted (%d bad rows skipped)", table.num_rows, stats.get("bad_rows", 0))
    return out


def _table_bytes(spec: NLPRunSpec, table: Any, fmt: str) -> bytes:
    """The predictions as parquet, or CSV (tag lists space-joined; no per-class probabilities)."""
    import pyarrow as pa

    buf = io.BytesIO()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        if spec.is_token:  # a tag list becomes one space-separated string
            for col in (c for c in table.column_names if pa.types.is_list(table[c].type)):
                table = table.set_column(table.column_names.index(col), col,
                                         pa.array([" ".join(map(str, t)) for t in table[col].to_pylist()], pa.string()))
        else:
            table = table.drop_columns([f"{spec.task_name}_probs"])
        pacsv.write_csv(table, buf)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, buf)
    return buf.getvalue()
