"""What every per-format reader shares: its options, its callbacks and its contract.

A reader is a generator over one file that yields ``(offset, batch)`` pairs, where ``offset``
is the position of the batch's first row among the file's *good* records (rows that parsed),
and returns the file's total number of good records. Offsets are what the source cuts into
fixed-size chunks for sharding, so they must not depend on which shard is reading.
Readers never hold more than one block (``block_bytes``) of input plus one decoded batch.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import pyarrow as pa

#: ``wanted(start, end)``: does the shard need any good record in ``[start, end)``?
#: Readers that can seek (parquet) use it to skip row groups; others read everything.
RowRangeFilter = Callable[[int, int], bool]

#: ``on_bad(row, good_before, reason)``: a record that cannot be parsed. ``row`` is the 0-based
#: data row in the file (blank lines and the header not counted); ``good_before`` is the number
#: of good records before it, which says which chunk (and so which shard) the row belongs to.
#: The callback raises (``on_error="raise"``) or counts it; the reader then drops the row.
BadRowHandler = Callable[[int, int, str], None]

#: the generator type every reader function returns
RecordStream = Generator[tuple[int, pa.RecordBatch], None, int]


@dataclass(frozen=True)
class ReadOptions:
    """Per-file read settings the source passes to a reader."""

    columns: list[str] | None = None  # read only these (None: all); they must exist
    schema: pa.Schema | None = None  # the source's unified schema: fixes column types
    read_rows: int = 65536  # max rows per decoded batch
    block_bytes: int = 1 << 20  # max bytes of raw text per parse step (csv, jsonl)
    csv_delimiter: str = ","
    csv_header: bool = True
    csv_column_names: list[str] | None = None


def always_wanted(start: int, end: int) -> bool:
    """The filter for a reader that should read every record (e.g. peeking at the schema)."""
    return True
