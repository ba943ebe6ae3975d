"""CSV/TSV: pyarrow's streaming reader, one block at a time, bad lines reported by number.

``use_threads=False`` keeps the invalid-row callback in file order, so the reported row
number is exact and the "good rows before" count that decides which shard owns a bad row
is the same on every shard.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


@dataclass
class _Progress:
    """How far a pass got: good records yielded and bad rows reported."""

    good: int = 0
    bad: int = 0


class _TextInNumbers(Exception):
    """pyarrow could not convert a value of a numeric column (text in it): read it as text."""


#: what pyarrow's CSV conversion accepts as a number, as a vectorised regex over a text column
_NUMBER = {"float": r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$",
           "int": r"^-?\d+$"}


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def read(file: DataFile, opts: ReadOptions, wanted: RowRangeFilter,
         on_bad: BadRowHandler) -> RecordStream:
    """Yield ``(offset, batch)`` over all good rows; report bad lines; return the good count.

    The fast pass lets pyarrow convert numeric columns. Where one holds text (``'abc'`` in a
    column of numbers), pyarrow stops without saying which row; the file is then read again
    with the numeric columns as text, converted here, so each such row is reported by number
    (and dropped with ``on_error=skip``). The second pass skips what the first already
    yielded and reported, so offsets and counts are those of one pass."""
    first = _CsvPass(file, opts, on_bad, text_columns=[], skip=_Progress())
    try:
        return (yield from first.records())
    except _TextInNumbers:
        pass
    schema = opts.schema
    text = [f.name for f in schema if _numeric(f.type) and (opts.columns is None or f.name in opts.columns)] \
        if schema is not None else []
    return (yield from _CsvPass(file, opts, on_bad, text_columns=text, skip=first.done).records())


class _CsvPass:
    """One pass over a CSV file; ``text_columns`` (numeric in the schema) are read as text and
    converted here, their unparseable values reported as bad rows."""

    def __init__(self, file: DataFile, opts: ReadOptions, on_bad: BadRowHandler,
                 text_columns: list[str], skip: _Progress) -> None:
        self.file, self.on_bad, self.skip = file, on_bad, skip
        self.types = {f.name: f.type for f in opts.schema} if opts.schema is not None else {}
        self.text = text_columns
        if text_columns:
            opts = replace(opts, schema=pa.schema(
                [f.with_type(pa.string()) if f.name in text_columns else f for f in opts.schema]))
        self.opts = opts
        self.header = 1 if opts.csv_header else 0
        self.done = _Progress()
        self.pending: list[tuple[int, str]] = []  # lines that did not parse, from pyarrow's callback
        self.waiting: list[tuple[int, str]] = []  # ... not yet reported (after the current batch)
        self.batch: pa.RecordBatch | None = None  # the current batch, text columns converted
        self.ragged: list[int] = []  # file rows of every such line so far (sorted)
        self.parsed = 0  # rows pyarrow returned so far

    def on_invalid(self, row) -> str:  # called by pyarrow; must not raise (pyarrow would swallow it)
        self.pending.append((row.number - 1 - self.header,
                             f"expected {row.expected_columns} fields, got {row.actual_columns}: "
                             f"{row.text[:120]!r}"))
        return "skip"

    def _open(self, handle) -> pacsv.CSVStreamingReader | None:
        opts, file = self.opts, self.file
        try:
            return _open_reader(file, handle, opts, opts.columns, self.on_invalid)
        except DataError as exc:
            if not self.text and "conversion error" in str(exc):  # the first block: read at open
                raise _TextInNumbers() from exc
            if opts.columns is not None and "include_columns" in str(exc):
                names = _header_names(file, opts)
                raise missing_columns_error([c for c in opts.columns if c not in names],
                                            names, file.url) from exc
            raise

    def _next(self, reader: pacsv.CSVStreamingReader) -> pa.RecordBatch | None:
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None
        except (pa.ArrowException, OSError, EOFError) as exc:
            if not self.text and "conversion error" in str(exc):
                raise _TextInNumbers() from exc
            raise DataError(f"cannot parse CSV ({exc})", file=self.file.url) from exc

    def records(self) -> RecordStream:
        with self.file.open() as handle:
            reader = self._open(handle)
            if reader is None:
                return 0
            while True:
                batch = self._next(reader)
                self.ragged.extend(row for row, _ in self.pending)
                self.waiting += self.pending  # pyarrow may parse a block ahead: hold them
                self.pending.clear()
                self._report(self._events(batch))
                if batch is None:
                    return self.done.good
                if batch.num_rows:
                    out = self._unseen(self.batch)
                    if out is not None and out.num_rows:
                        yield self.done.good - out.num_rows, out

    def _events(self, batch: pa.RecordBatch | None) -> list[tuple[int, str]]:
        """The bad rows up to the end of ``batch`` (all that are left at the end), in file
        order; the batch's text columns converted (kept in ``self.batch``)."""
        self.batch = batch
        if batch is None:
            events, self.waiting = self.waiting, []
            return sorted(events)
        parsed = np.arange(self.parsed, self.parsed + batch.num_rows, dtype=np.int64)
        self.parsed += batch.num_rows
        events: list[tuple[int, str]] = []
        if self.text:
            self.batch, events = self._to_numbers(batch, parsed)
        end = int(self._file_rows(parsed[-1:])[0]) if batch.num_rows else -1
        ready = [e for e in self.waiting if e[0] < end]
        self.waiting = [e for e in self.waiting if e[0] >= end]
        return sorted(ready + events)

    def _report(self, events: list[tuple[int, str]]) -> None:
        """Bad rows in file order; ``good_before`` is the row less the bad rows before it."""
        for row, reason in events:
            if self.done.bad >= self.skip.bad:  # the first pass reported the rest
                self.on_bad(row, row - self.done.bad, reason)
            self.done.bad += 1

    def _unseen(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """Count ``batch`` as yielded; return the part the first pass did not yield."""
        start = self.done.good
        self.done.good += batch.num_rows
        if self.done.good <= self.skip.good:
            return None
        return batch.slice(max(0, self.skip.good - start))

    def _file_rows(self, parsed: np.ndarray) -> np.ndarray:
        """File rows of parsed-row numbers: shifted past the lines that did not parse (the
        smallest r with r - #(ragged <= r) == parsed; a monotone fixed point)."""
        ragged = np.asarray(self.ragged, dtype=np.int64)
        rows = parsed
        while True:
            nxt = parsed + np.searchsorted(ragged, rows, side="right")
            if np.array_equal(nxt, rows):
                return rows
            rows = nxt

    def _to_numbers(self, batch: pa.RecordBatch, parsed: np.ndarray) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
        """The text columns converted to their numeric types; rows whose text is no number
        dropped and returned as (file row, reason) events. Vectorised (a regex per column)."""
        bad = np.zeros(batch.num_rows, dtype=bool)
        reasons: dict[int, str] = {}
        columns = dict(zip(batch.schema.names, batch.columns))
        for name in self.text:
            if name not in columns:
                continue
            target = self.types[name]
            values = columns[name]
            ok = pc.match_substring_regex(values, _NUMBER["int" if pa.types.is_integer(target) else "float"],
                                          ignore_case=True)
            wrong = ~pc.fill_null(ok, True).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(wrong & ~bad)[:1]:
                reasons[int(i)] = f"column '{name}' ({target}) holds {values[int(i)].as_py()!r}, not a number"
            bad |= wrong
            try:
                columns[name] = pc.cast(pc.if_else(pa.array(wrong), pa.scalar(None, pa.string()), values), target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"column '{name}' cannot be read as {target} ({exc})", file=self.file.url) from exc
        out = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
        if not bad.any():
            return out, []
        idx = np.flatnonzero(bad)
        rows = self._file_rows(parsed[idx])
        events = [(int(r), reasons.get(int(i), "a numeric column holds text")) for i, r in zip(idx, rows)]
        return out.filter(pa.array(~bad)), events
