"""CSV/TSV: pyarrow's streaming reader, one block at a time, bad lines reported by number.

``use_threads=False`` keeps the invalid-row callback in file order, so the reported row
number is exact and the "good rows before" count that decides which shard owns a bad row
is the same on every shard.
"""
from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pyarrow.csv as pacsv

from dataio.columns import missing_columns_error
from dataio.files import DataFile
from dataio.readers.base import BadRowHandler, ReadOptions, RecordStream, RowRangeFilter
from lingjie.errors import DataError


def _delimiter(file: DataFile, opts: ReadOptions) -> str:
    """A ``.tsv`` file read with the default ``,`` is meant to be tab-separated."""
    name = file.path.lower()
    if opts.csv_delimiter == "," and (name.endswith(".tsv") or ".tsv." in name):
        return "\t"
    return opts.csv_delimiter


def _read_options(opts: ReadOptions) -> pacsv.ReadOptions:
    names = opts.csv_column_names
    return pacsv.ReadOptions(
        use_threads=False,
        block_size=opts.block_bytes,
        column_names=names,
        skip_rows=1 if (opts.csv_header and names) else 0,
        autogenerate_column_names=not opts.csv_header and not names,
    )


def _is_empty_error(exc: Exception) -> bool:
    return "Empty CSV file" in str(exc)


def _open_reader(file: DataFile, handle, opts: ReadOptions, columns: list[str] | None,
                 on_invalid) -> pacsv.CSVStreamingReader | None:
    types = {}
    if opts.schema is not None:
        types = {f.name: f.type for f in opts.schema if not pa.types.is_null(f.type)}
    convert = pacsv.ConvertOptions(column_types=types, include_columns=columns,
                                   strings_can_be_null=True)
    parse = pacsv.ParseOptions(delimiter=_delimiter(file, opts), invalid_row_handler=on_invalid)
    try:
        return pacsv.open_csv(handle, read_options=_read_options(opts), parse_options=parse,
                              convert_options=convert)
    except (pa.ArrowException, OSError, EOFError) as exc:
        if _is_empty_error(exc):
            return None
        raise DataError(f"cannot read CSV ({exc})", file=file.url) from exc


def _header_names(file: DataFile, opts: ReadOptions) -> list[str]:
    with file.open() as handle:
        reader = _open_reader(file, handle, replace(opts, schema=None),
                              None, lambda row: "skip")
        return [] if reader is None else reader.schema.names


def peek_schema(file: DataFile, opts: ReadOptions) -> pa.Schema | None:
    """The schema inferred from the first block, or None when the file has no data rows."""
    with file.open() as handle:
        reader = _open_reader(file, handle, opts, None, lambda row: "skip")
        if reader is None:
            return None
        for batch in reader:
            if batch.num_rows:
                return reader.schema
        return None


def read(file: DataFile, opts: ReadOptions, wanted: RowRangeFilter,
         on_bad: BadRowHandler) -> RecordStream:
    """Yield ``(offset, batch)`` over all good rows; report bad lines; return the good count."""
    header = 1 if opts.csv_header else 0
    pending: list[tuple[int, str]] = []

    def on_invalid(row) -> str:  # called by pyarrow; must not raise (pyarrow would swallow it)
        pending.append((row.number - 1 - header,
                        f"expected {row.expected_columns} fields, got {row.actual_columns}: "
                        f"{row.text[:120]!r}"))
        return "skip"

    with file.open() as handle:
        try:
            reader = _open_reader(file, handle, opts, opts.columns, on_invalid)
        except DataError as exc:
            if opts.columns is not None and "include_columns" in str(exc):
                names = _header_names(file, opts)
                raise missing_columns_error([c for c in opts.columns if c not in names],
                                            names, file.url) from exc
            raise
        if reader is None:
            return 0
        good = 0
        bad_seen = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            except (pa.ArrowException, OSError, EOFError) as exc:
                raise DataError(f"cannot parse CSV ({exc})", file=file.url) from exc
            for row, reason in pending:  # bad lines precede the rows of the batch they were in
                on_bad(row, row - bad_seen, reason)
                bad_seen += 1
            pending.clear()
            if batch is None:
                return good
            if batch.num_rows:
                yield good, batch
                good += batch.num_rows
