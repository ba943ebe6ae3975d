"""The data source: files of any fsspec URL -> a sharded, shuffled, resumable stream of batches.

The stream for one (rank, worker) is built from small stages, in this order:

    files (epoch order) -> reader per format -> owned fixed-size chunks -> drop bad rows
    -> shuffle buffer -> limit_rows -> skip_batches -> exact batch_size

Everything before the shuffle buffer is a pure function of the files and ``read_rows``, so all
shards agree on chunk numbers; everything after it is a pure function of the rows and the
seeds, so the same arguments give the same batches, which is what makes ``skip_batches``
resume exact. Memory is bounded by one read block, one chunk and the shuffle buffer.
"""
from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataio.checks import ColumnRule, find_violations, numeric_columns
from dataio.columns import require_columns
from dataio.files import DataFile, expand_paths
from dataio.readers import ReadOptions, reader_for
from dataio.rebatch import drop_rows, rebatch, take_rows
from dataio.retry import RetryPolicy
from dataio.sharding import Shard, owned_chunks
from dataio.shuffle import shuffle_rows
from lingjie.errors import ConfigError, DataError

_ON_ERROR = ("raise", "skip")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value!r}")


def _non_negative(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ConfigError(name, f"must be a non-negative integer, got {value!r}")


@dataclass
class _FileSchema:
    """The unified schema and the file it came from (named in type-mismatch errors)."""

    schema: pa.Schema
    file: str


class Source:
    """A streaming source of Arrow record batches over parquet, CSV and JSON-lines files.

    ``path`` is a file, a directory (every data file inside, hidden/``_`` files skipped), a
    glob, or a list of those, as plain paths or fsspec URLs (``file://``, ``memory://``, and
    any installed fsspec backend such as ``oss://`` or ``hdfs://``). Paths are expanded once,
    here, so a wrong path fails immediately. See :meth:`iter_batches` for the stream.

    ``stats`` holds the counters of the most recent :meth:`iter_batches` pass of this shard:
    ``rows_read`` (rows that entered the stream), ``bad_rows`` (rows dropped with
    ``on_error="skip"``), ``bad_rows_by_file``, ``empty_files`` and ``files_read``. Bad rows are
    counted by the shard that owns their chunk, so summing over shards gives the total.

    ``rules`` (:class:`~dataio.checks.ColumnRule`) say what numeric columns may hold; a row that
    breaks one (a 7 in a binary label, an infinity in a feature) is a bad row like one that does
    not parse, and a CSV column a rule names is read as numbers even where its first block holds
    text, so text in it is a bad row too.

    Remote URLs get their credentials from :mod:`dataio.credentials` and are listed and opened
    with bounded retries (``retry``: a :class:`~dataio.retry.RetryPolicy` or a dict of its
    fields); :func:`dataio.sources.open_source` also dispatches ``odps://`` and ``kafka://``.
    """

    def __init__(self, path: str | list[str], format: str = "auto",
                 columns: list[str] | None = None,
                 on_error: str = "raise",
                 required_columns: Sequence[str] = (),
                 csv_delimiter: str = ",", csv_header: bool = True,
                 csv_column_names: list[str] | None = None,
                 read_rows: int = 65536,
                 storage_options: dict | None = None,
                 read_block_bytes: int = 1 << 20,
                 retry: RetryPolicy | dict | None = None,
                 column_types: dict[str, str] | None = None,
                 rules: Sequence[ColumnRule] = ()) -> None:
        if on_error not in _ON_ERROR:
            raise ConfigError("on_error", f"must be 'raise' or 'skip', got {on_error!r}",
                              list(_ON_ERROR))
        _positive("read_rows", read_rows)
        _positive("read_block_bytes", read_block_bytes)
        if columns is not None:
            if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
                raise ConfigError("columns", f"must be a list of column names, got {columns!r}")
            if not columns:
                raise ConfigError("columns", "must name at least one column (or be None for all)")
        if isinstance(required_columns, str):
            raise ConfigError("required_columns",
                              f"must be a list of column names, got the string {required_columns!r}")
        if not isinstance(csv_delimiter, str) or len(csv_delimiter) != 1:
            raise ConfigError("csv_delimiter", f"must be one character, got {csv_delimiter!r}")
        self.format = format
        self.columns = list(dict.fromkeys(columns)) if columns is not None else None
        self.on_error = on_error
        self.required_columns = list(dict.fromkeys(required_columns))
        self.read_rows = int(read_rows)
        self._options = ReadOptions(
            read_rows=self.read_rows, block_bytes=int(read_block_bytes),
            csv_delimiter=csv_delimiter, csv_header=csv_header,
            csv_column_names=list(csv_column_names) if csv_column_names else None)
        self._files = expand_paths(path, format, storage_options, retry)
        self.files: list[str] = [f.url for f in self._files]
        # declared Arrow types (e.g. an EasyNLP 'text:str' schema) win over the inferred ones, so a
        # text column whose first block looks numeric is still read as text
        self.column_types = {k: pa.type_for_alias(v) for k, v in (column_types or {}).items()}
        self.rules = tuple(rules)
        self._unified: _FileSchema | None = None
        self.stats: dict = self._fresh_stats()

    # ------------------------------------------------------------------ schema
    def _unified_schema(self) -> _FileSchema:
        """The full schema of the first non-empty file (in sorted order), cached."""
        if self._unified is None:
            for file in self._files:
                schema = reader_for(file.format).peek_schema(file, self._options)
                if schema is not None:
                    schema = pa.schema([f.with_type(self._declared_type(file, f)) for f in schema])
                    self._unified = _FileSchema(schema.remove_metadata(), file.url)
                    break
            else:
                raise DataError(f"all {len(self._files)} input file(s) are empty",
                                file=self.files[0] if len(self.files) == 1 else None)
        return self._unified

    def _declared_type(self, file: DataFile, field: pa.Field) -> pa.DataType:
        """``column_types`` first; then a CSV column a rule calls numeric whose first block held
        text (or nothing) is read as float64, so its text values become bad rows, not a string
        column the model cannot use."""
        if field.name in self.column_types:
            return self.column_types[field.name]
        t = field.type
        if file.format == "csv" and field.name in numeric_columns(self.rules) and (
                pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            return pa.float64()
        return t

    def schema(self) -> pa.Schema:
        """The schema of the batches: the first non-empty file's, projected to ``columns``."""
        unified = self._unified_schema()
        names = unified.schema.names
        needed = list(self.columns or []) + self.required_columns
        require_columns(needed, names, unified.file)
        return pa.schema([unified.schema.field(n) for n in (self.columns or names)])

    def count_rows(self) -> int | None:
        """Total rows from the Parquet footers (cheap, through this source's file systems and
        credentials); None when any file is not Parquet."""
        import pyarrow.parquet as pq

        total = 0
        for file in self._files:
            if file.format != "parquet":
                return None
            with file.open() as handle:
                try:
                    total += pq.ParquetFile(handle).metadata.num_rows
                except (pa.ArrowException, OSError) as exc:
                    if file.fs.size(file.path) == 0:
                        continue
                    raise DataError(f"not a readable parquet file ({exc})", file=file.url) from exc
        return total

    def check_columns(self, needed: Iterable[str]) -> None:
        """Fail early, naming each missing column, the file, and the closest existing names."""
        unified = self._unified_schema()
        require_columns(needed, self.schema().names, unified.file)

    # ------------------------------------------------------------------ stream
    @staticmethod
    def _fresh_stats() -> dict:
        return {"rows_read": 0, "bad_rows": 0, "bad_rows_by_file": {}, "empty_files": 0,
                "files_read": 0}

    def _count_bad(self, file: DataFile, count: int = 1) -> None:
        self.stats["bad_rows"] += count
        by_file = self.stats["bad_rows_by_file"]
        by_file[file.url] = by_file.get(file.url, 0) + count

    def _drop_null_required(self, file: DataFile, batch: pa.RecordBatch, first_row: int,
                            ) -> pa.RecordBatch:
        """Rows with a null in a required column are bad rows."""
        valid = None
        for name in self.required_columns:
            ok = pc.is_valid(batch.column(name))
            valid = ok if valid is None else pc.and_(valid, ok)
        bad = batch.num_rows - pc.sum(valid).as_py() if valid is not None else 0
        if not bad:
            return batch
        if self.on_error == "raise":
            first = int(np.argmin(valid.to_numpy(zero_copy_only=False)))
            column = next(n for n in self.required_columns if not batch.column(n).is_valid()[first].as_py())
            raise DataError(f"null in required column {column!r} "
                            "(set on_error='skip' to drop such rows)",
                            file=file.url, row=first_row + first)
        self._count_bad(file, bad)
        return batch.filter(valid)

    def _drop_rule_breakers(self, file: DataFile, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        """Rows breaking a value rule (``rules``) are bad rows: raised naming the first, or
        dropped and counted. Vectorised over the chunk; nothing is allocated when all pass."""
        if not self.rules or not batch.num_rows:
            return batch
        found = find_violations(batch, self.rules)
        if not found:
            return batch
        if self.on_error == "raise":
            first = min(found, key=lambda v: v.first)
            raise DataError(f"{first.message()} (or set on_error='skip' to drop such rows)",
                            file=file.url, row=first_row + first.first)
        bad = found[0].mask
        for v in found[1:]:
            bad = bad | v.mask
        self._count_bad(file, int(bad.sum()))
        return batch.filter(pa.array(~bad))

    def _conform(self, file: DataFile, batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
        """Select the output columns in order and cast them to the unified types."""
        batch = batch.select(target.names)
        if batch.schema.equals(target):
            return batch
        try:
            return batch.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(
                f"column types {batch.schema.types} cannot be converted to the types "
                f"{target.types} of {self._unified_schema().file} ({exc})", file=file.url) from exc

    def _good_rows(self, files: list[DataFile], shard: Shard) -> Iterator[pa.RecordBatch]:
        """This shard's rows, file by file in the given order, bad rows dropped."""
        target = self.schema()
        read_names = list(target.names) + [c for c in self.required_columns if c not in target.names]
        options = replace(self._options, columns=read_names, schema=self._unified_schema().schema)
        first_chunk = 0  # global number of the current file's first chunk
        for file in files:
            total = yield from self._file_rows(file, shard, first_chunk, options, target)
            first_chunk += -(-total // self.read_rows)

    def _file_rows(self, file: DataFile, shard: Shard, first_chunk: int, options: ReadOptions,
                   target: pa.Schema) -> Generator[pa.RecordBatch, None, int]:
        """One file's rows for this shard; returns the file's good-record count."""
        rows = self.read_rows
        seen_bad = 0

        def on_bad(row: int, good_before: int, reason: str) -> None:
            nonlocal seen_bad
            seen_bad += 1
            if self.on_error == "raise":
                raise DataError(f"{reason} (set on_error='skip' to drop such rows)",
                                file=file.url, row=row)
            if shard.owns(first_chunk + good_before // rows):  # counted by one shard only
                self._count_bad(file)

        def wanted(start: int, end: int) -> bool:
            return shard.owns_any(first_chunk + start // rows, first_chunk + (end - 1) // rows)

        records = reader_for(file.format).read(file, options, wanted, on_bad)
        chunks = owned_chunks(records, rows, lambda k: shard.owns(first_chunk + k))
        try:
            while True:
                try:
                    chunk_no, batch = next(chunks)
                except StopIteration as stop:
                    total = int(stop.value)
                    break
                batch = self._drop_null_required(file, batch, chunk_no * rows)
                batch = self._conform(file, batch, target)
                batch = self._drop_rule_breakers(file, batch, chunk_no * rows)
                if batch.num_rows:
                    self.stats["rows_read"] += batch.num_rows
                    yield batch
        finally:
            chunks.close()  # a consumer that stops early (limit_rows) closes the file now
        self.stats["files_read"] += 1
        if total == 0 and seen_bad == 0:
            if self.on_error == "raise":
                raise DataError("file is empty (no data rows); remove it or set "
                                "on_error='skip'", file=file.url)
            self.stats["empty_files"] += 1
        return total

    def iter_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                     epoch: int = 0, shuffle_buffer_rows: int = 100_000, rank: int = 0,
                     world_size: int = 1, worker: int = 0, num_workers: int = 1,
                     skip_batches: int = 0, limit_rows: int | None = None,
                     ) -> Iterator[pa.RecordBatch]:
        """Stream this shard's rows as record batches of exactly ``batch_size`` rows.

        - shard ``rank * num_workers + worker`` of ``world_size * num_workers`` gets chunks
          ``k`` (``read_rows`` rows each, numbered over files) with ``k % shards == shard``;
        - ``shuffle`` permutes the file order and passes rows through a
          ``shuffle_buffer_rows`` buffer, both seeded by ``(seed, epoch)``: reproducible per
          epoch, different across epochs;
        - ``limit_rows`` caps the rows this iterator yields (before ``skip_batches``);
        - ``skip_batches=k`` yields exactly the batches after the first k of the same call
          without it, so a checkpoint of ``(epoch, batches_done)`` resumes exactly.
        The last batch may be smaller than ``batch_size``. ``stats`` is reset on each call.
        """
        _positive("batch_size", batch_size)
        _positive("shuffle_buffer_rows", shuffle_buffer_rows)
        _non_negative("skip_batches", skip_batches)
        _non_negative("seed", seed)
        _non_negative("epoch", epoch)
        if limit_rows is not None:
            _non_negative("limit_rows", limit_rows)
        shard = Shard.of(rank, world_size, worker, num_workers)
        self.schema()  # fail on a missing column before any work
        return self._stream(batch_size, shuffle, int(seed), int(epoch), shuffle_buffer_rows,
                            shard, int(skip_batches), limit_rows)

    def _stream(self, batch_size: int, shuffle: bool, seed: int, epoch: int, buffer_rows: int,
                shard: Shard, skip_batches: int, limit_rows: int | None,
                ) -> Iterator[pa.RecordBatch]:
        self.stats = self._fresh_stats()
        files = list(self._files)
        rows: Iterator[pa.RecordBatch]
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(len(files))
            files = [files[i] for i in order]
            rows = self._good_rows(files, shard)
            rows = shuffle_rows(rows, buffer_rows,
                                np.random.default_rng([seed, epoch, shard.index, 1]))
        else:
            rows = self._good_rows(files, shard)
        rows = take_rows(rows, limit_rows)
        rows = drop_rows(rows, skip_batches * batch_size)
        yield from rebatch(rows, batch_size)

    def __repr__(self) -> str:
        return f"Source({len(self.files)} file(s), first={self.files[0]!r}, format={self.format!r})"
