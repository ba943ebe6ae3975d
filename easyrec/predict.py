"""trainer.mode=predict: score a file with a checkpoint and write Parquet or CSV, streaming."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataio.progress import progress
from lingjie.errors import ConfigError
from trainer.run_dir import RunDir


def predict_to_file(spec: Any, restored: Any, run: RunDir) -> Path:
    """Score ``trainer.predict.input_path`` (default: data.eval_path) batch by batch."""
    from easyrec.data import make_source

    root = spec.root
    ps = root.trainer.predict
    path = ps.input_path or root.data.eval_path
    if not path:
        raise ConfigError("trainer.predict.input_path", "nothing to score: set trainer.predict.input_path=FILE")
    out = Path(ps.output_path) if ps.output_path else run.root / f"predictions.{ps.format}"
    pipeline, engine = restored.state, restored.engine
    data = root.data
    src = make_source(spec, path, pipeline, with_labels=False, extra_columns=list(ps.passthrough))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writer = None
    rows = 0
    try:
        for rb in progress(src.iter_batches(data.eval_batch_size), desc="predict", enabled=root.trainer.progress_bar):
            preds = engine.predict(pipeline.transform(rb, with_labels=False))
            cols = {c: rb.column(c) for c in ps.passthrough}
            for task in spec.task_types:
                if task in preds:
                    cols[task] = pa.array(np.asarray(preds[task], dtype=np.float32).reshape(-1))
            table = pa.table(cols)
            if writer is None:
                writer = _open_writer(tmp, table.schema, ps.format)
            writer.write_table(table) if ps.format == "parquet" else writer.write(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    return out


def _open_writer(path: Path, schema: pa.Schema, fmt: str) -> Any:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(str(path), schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(str(path), schema)
