"""Row-stream stages after reading: limit, skip (resume) and exact-size batching.

Batches are cut from one continuous row stream, so "skip the first k batches" is exactly
"drop the first k * batch_size rows": a resumed run yields the same batches as the rest of
the uninterrupted run, without materialising the skipped ones as batches.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa


def take_rows(batches: Iterable[pa.RecordBatch], limit: int | None) -> Iterator[pa.RecordBatch]:
    """The first ``limit`` rows of the stream (all of them when ``limit`` is None)."""
    if limit is None:
        yield from batches
        return
    left = limit
    if left <= 0:
        return
    for batch in batches:
        if batch.num_rows >= left:
            yield batch.slice(0, left)
            return
        left -= batch.num_rows
        yield batch


def drop_rows(batches: Iterable[pa.RecordBatch], count: int) -> Iterator[pa.RecordBatch]:
    """The stream without its first ``count`` rows."""
    left = count
    for batch in batches:
        if left >= batch.num_rows:
            left -= batch.num_rows
            continue
        if left:
            batch, left = batch.slice(left), 0
        yield batch


def rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows (the last may be smaller), across input boundaries."""
    held: list[pa.RecordBatch] = []
    held_rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        held.append(batch)
        held_rows += batch.num_rows
        if held_rows < size:
            continue
        merged = pa.concat_batches(held) if len(held) > 1 else held[0]
        full = held_rows - held_rows % size
        for start in range(0, full, size):  # one step per output batch
            yield merged.slice(start, size)
        held = [merged.slice(full)] if full < held_rows else []
        held_rows -= full
    if held_rows:
        yield pa.concat_batches(held) if len(held) > 1 else held[0]
