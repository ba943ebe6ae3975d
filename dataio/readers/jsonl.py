"""JSON lines: parse block by block with pyarrow, isolating unparsable lines without losing the rest.

pyarrow's JSON reader fails a whole block on one bad line and has no invalid-row hook, so
the file is cut into blocks at line boundaries here; a block that fails is split around the
line pyarrow names ("in row N"), or bisected when it names none. The cost is a few extra
parses per bad line; good blocks are parsed once. Blank lines are not records.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from dataio.files import DataFile
from dataio.readers.base import BadRowHandler, ReadOptions, RecordStream, RowRangeFilter
from lingjie.errors import DataError

_ROW_IN_MESSAGE = re.compile(r"in row (\d+)")


def _blocks(handle, block_bytes: int) -> Iterator[bytes]:
    """Raw byte blocks that each end at a line boundary (the last may lack a newline)."""
    carry = b""
    while True:
        data = handle.read(block_bytes)
        if not data:
            if carry:
                yield carry
            return
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data  # one line longer than a block: keep reading
            continue
        carry = data[cut + 1:]
        yield data[:cut + 1]


def _line_bounds(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end byte offsets of the non-blank lines of a block (vectorised).

    Blank means whitespace only, which is also what pyarrow skips, so line k here is the
    "row k" pyarrow names in its errors.
    """
    raw = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(block)]])
    solid = ~np.isin(raw, np.frombuffer(b" \t\r\n", dtype=np.uint8))
    solid_before = np.concatenate([[0], np.cumsum(solid, dtype=np.int64)])
    keep = solid_before[ends] > solid_before[starts]
    return starts[keep], ends[keep]


def _parse(data: bytes, schema: pa.Schema | None) -> pa.Table:
    parse = pajson.ParseOptions(explicit_schema=schema,
                                unexpected_field_behavior="ignore" if schema is not None else "infer")
    read = pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
    return pajson.read_json(io.BytesIO(data), read_options=read, parse_options=parse)


def _fails(line: bytes, schema: pa.Schema | None) -> bool:
    """Confirm that the line pyarrow blamed is bad on its own (never drop a good line)."""
    try:
        _parse(line, schema)
    except pa.ArrowException:
        return True
    return False


def _parse_lines(block: bytes, starts: np.ndarray, ends: np.ndarray, schema: pa.Schema | None,
                 ) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """Parse lines ``[0, len(starts))``; return the good tables (in order) and the bad lines."""
    tables: list[pa.Table] = []
    bad: list[tuple[int, str]] = []
    todo = [(0, len(starts))]  # a stack of line ranges, processed in file order
    while todo:
        lo, hi = todo.pop()
        if lo >= hi:
            continue
        try:
            table = _parse(block[starts[lo]:ends[hi - 1]] + b"\n", schema)
        except pa.ArrowException as exc:
            found = _ROW_IN_MESSAGE.search(str(exc))
            if hi - lo == 1:
                bad.append((lo, str(exc)))
                continue
            at = lo + int(found.group(1)) if found else -1
            if lo <= at < hi and _fails(block[starts[at]:ends[at]], schema):
                bad.append((at, str(exc)))
                todo.extend([(at + 1, hi), (lo, at)])  # the earlier range comes off first
            else:
                mid = (lo + hi) // 2
                todo.extend([(mid, hi), (lo, mid)])
            continue
        if schema is None:
            schema = table.schema  # later ranges of the first block must agree with it
        tables.append(table)
    bad.sort()
    return tables, bad


def _widen_null_types(schema: pa.Schema) -> pa.Schema:
    """A column that is null throughout the first block is read as string, not null type."""
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])


def _records(file: DataFile, opts: ReadOptions, on_bad: BadRowHandler | None,
             ) -> Iterator[pa.Table]:
    schema = opts.schema
    row = 0  # non-blank lines seen so far
    good = 0
    with file.open() as handle:
        for block in _blocks(handle, opts.block_bytes):
            starts, ends = _line_bounds(block)
            if not len(starts):
                continue
            tables, bad = _parse_lines(block, starts, ends, schema)
            for k, (line, reason) in enumerate(bad):
                if on_bad is not None:
                    on_bad(row + line, good + line - k, f"not a JSON object: {reason}")
            for table in tables:
                if schema is None:
                    schema = _widen_null_types(table.schema)
                if table.schema != schema:
                    table = table.cast(schema)
                good += table.num_rows
                yield table
            row += len(starts)


def peek_schema(file: DataFile, opts: ReadOptions) -> pa.Schema | None:
    """The schema inferred from the first block with a good line, or None when empty."""
    try:
        for table in _records(file, opts, None):
            if table.num_rows:
                return table.schema
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"cannot read JSON lines ({exc})", file=file.url) from exc
    return None


def read(file: DataFile, opts: ReadOptions, wanted: RowRangeFilter,
         on_bad: BadRowHandler) -> RecordStream:
    """Yield ``(offset, batch)`` over all good lines; report bad ones; return the good count."""
    good = 0
    try:
        for table in _records(file, opts, on_bad):
            if opts.columns is not None:
                missing = [c for c in opts.columns if c not in table.column_names]
                if missing:
                    from dataio.columns import missing_columns_error
                    raise missing_columns_error(missing, table.column_names, file.url)
                table = table.select(opts.columns)
            for batch in table.to_batches(max_chunksize=opts.read_rows):
                yield good, batch
                good += batch.num_rows
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"cannot read JSON lines ({exc})", file=file.url) from exc
    return good
