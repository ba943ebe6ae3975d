"""Parquet: stream record batches row group by row group, skipping groups no shard row needs.

Parquet knows its row count from the footer, so a shard can skip whole row groups that hold
none of its chunks without decoding them; this is what keeps N-way sharded reads from costing
N times the I/O.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataio.columns import require_columns
from dataio.files import DataFile
from dataio.readers.base import BadRowHandler, ReadOptions, RecordStream, RowRangeFilter
from lingjie.errors import DataError


def _open(file: DataFile, handle) -> pq.ParquetFile | None:
    """The ParquetFile, or None for a 0-byte file (empty, not corrupt)."""
    try:
        if file.fs.size(file.path) == 0:
            return None
        return pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable parquet file ({exc})", file=file.url) from exc


def peek_schema(file: DataFile, opts: ReadOptions) -> pa.Schema | None:
    """The file's full schema, or None when it has no rows."""
    with file.open() as handle:
        pf = _open(file, handle)
        if pf is None or pf.metadata.num_rows == 0:
            return None
        return pf.schema_arrow


def _contiguous_runs(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in indices:  # one entry per row group, not per row
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def read(file: DataFile, opts: ReadOptions, wanted: RowRangeFilter,
         on_bad: BadRowHandler) -> RecordStream:
    """Yield ``(offset, batch)`` for the wanted row groups; return the file's row count."""
    with file.open() as handle:
        pf = _open(file, handle)
        if pf is None:
            return 0
        meta = pf.metadata
        if opts.columns is not None:
            require_columns(opts.columns, pf.schema_arrow.names, file.url)
        sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        chosen = [i for i in range(len(sizes)) if sizes[i] and wanted(int(starts[i]), int(starts[i + 1]))]
        try:
            for run in _contiguous_runs(chosen):
                offset = int(starts[run[0]])
                for batch in pf.iter_batches(batch_size=opts.read_rows, row_groups=run,
                                             columns=opts.columns, use_threads=False):
                    yield offset, batch
                    offset += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"corrupt parquet data ({exc})", file=file.url) from exc
        return int(meta.num_rows)
