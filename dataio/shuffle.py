"""A bounded shuffle buffer: approximate global shuffling in a fixed amount of memory.

The buffer fills to ``buffer_rows`` rows, then releases a random half of itself per refill,
so a row can travel up to a buffer's length from its place in the file. Together with the
per-epoch file order this is the usual streaming shuffle (tf.data, WebDataset); the buffer
holds at most ``buffer_rows`` plus one incoming chunk.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa


def _take(table: pa.Table, indices: np.ndarray) -> pa.RecordBatch:
    taken = table.take(pa.array(indices, pa.int64())).combine_chunks()
    batches = taken.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def shuffle_rows(batches: Iterable[pa.RecordBatch], buffer_rows: int,
                 rng: np.random.Generator) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``batches`` in a random order determined by ``rng`` alone."""
    held: list[pa.RecordBatch] = []
    held_rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        held.append(batch)
        held_rows += batch.num_rows
        if held_rows >= buffer_rows:
            table = pa.Table.from_batches(held)
            order = rng.permutation(held_rows)
            release = held_rows - buffer_rows // 2
            yield _take(table, order[:release])
            kept = _take(table, order[release:])
            held, held_rows = ([kept], kept.num_rows) if kept.num_rows else ([], 0)
    if held_rows:
        table = pa.Table.from_batches(held)
        yield _take(table, rng.permutation(held_rows))
