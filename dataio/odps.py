"""MaxCompute (ODPS) tables -> sharded, resumable Arrow record batches.

``odps://project/tables/table[/pt=20240101[/region=cn]]``: a table, optionally filtered to
partitions. Each partition level is ``key=pattern`` with shell wildcards (``pt=202401*``);
levels not named match anything. The source reads through a :class:`TableReader`:

- :class:`PyOdpsTableReader`: the real service through pyodps' table tunnel (Arrow); endpoint
  and access key from :func:`dataio.credentials.resolve_odps` (``ODPS_ENDPOINT``,
  ``ODPS_ACCESS_ID``, ``ODPS_ACCESS_KEY``);
- :class:`LocalTableReader`: the same interface over Parquet files laid out as
  ``root/project/table/[key=value/...]/*.parquet`` (tests, offline runs; pass
  ``options={"local_root": root}``).

Sharding is by contiguous row ranges, the way table-tunnel readers split work: the selected
partitions' rows are numbered in partition order and shard ``rank * num_workers + worker``
of ``world_size * num_workers`` reads ``[total * k / n, total * (k + 1) / n)``.
"""
from __future__ import annotations

import abc
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataio.columns import require_columns
from dataio.credentials import redact
from dataio.rebatch import drop_rows, rebatch, take_rows
from dataio.retry import RetryPolicy, with_retries
from dataio.sharding import Shard
from dataio.shuffle import shuffle_rows
from lingjie.errors import ConfigError, DataError


@dataclass(frozen=True)
class OdpsTableUrl:
    """A parsed ``odps://project/tables/table[/k=v...]`` URL."""

    project: str
    table: str
    partition: tuple[tuple[str, str], ...]  # (key, pattern) filters, in URL order

    @classmethod
    def parse(cls, url: str) -> "OdpsTableUrl":
        if not isinstance(url, str) or not url.lower().startswith("odps://"):
            raise ConfigError("path", f"not an odps:// URL: {redact(url)!r}")
        parts = [p for p in url[len("odps://"):].split("?")[0].split("/") if p]
        if len(parts) < 3 or parts[1] != "tables":
            raise ConfigError("path", f"{url!r} must look like odps://project/tables/table"
                                      "[/pt=value...]")
        return cls(parts[0], parts[2], parse_partition_filter("/".join(parts[3:])))

    def shown(self) -> str:
        return f"odps://{self.project}/tables/{self.table}"


def parse_partition_filter(spec: str | Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """``"pt=1/ds=2"`` or ``"pt=1,ds=2"`` -> ``(("pt", "1"), ("ds", "2"))``."""
    if not spec:
        return ()
    text = spec if isinstance(spec, str) else "/".join(spec)
    out = []
    for level in text.replace(",", "/").split("/"):
        if not level.strip():
            continue
        key, sep, value = level.partition("=")
        if not sep or not key.strip():
            raise ConfigError("partition", f"partition filter {level!r} must be key=value")
        out.append((key.strip(), value.strip().strip("'\"")))
    return tuple(out)


def partition_matches(partition: str, filters: tuple[tuple[str, str], ...]) -> bool:
    """Whether ``"pt=1/ds=2"`` satisfies every ``(key, pattern)`` filter."""
    values = dict(level.split("=", 1) for level in partition.split("/") if "=" in level)
    return all(k in values and fnmatch.fnmatchcase(values[k], pattern) for k, pattern in filters)


class TableReader(abc.ABC):
    """What :class:`OdpsSource` needs from a table: the contract both implementations meet.

    Partitions are named ``"key=value/key=value"`` in the table's partition-column order;
    a table without partition columns has the single partition ``""``.
    """

    @abc.abstractmethod
    def partitions(self) -> list[str]:
        """Every partition, sorted; ``[""]`` for a table without partition columns."""

    @abc.abstractmethod
    def schema(self) -> pa.Schema:
        """The data columns (partition columns excluded)."""

    @abc.abstractmethod
    def count(self, partition: str) -> int:
        """Rows in one partition."""

    @abc.abstractmethod
    def read(self, partition: str, start: int, count: int, columns: list[str] | None,
             batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Rows ``[start, start + count)`` of ``partition``, in order, only ``columns``."""

    def close(self) -> None:
        """Release connections (optional)."""


class LocalTableReader(TableReader):
    """Parquet files under ``root/project/table/[k=v/...]/`` as a MaxCompute table."""

    def __init__(self, root: str | Path, project: str, table: str) -> None:
        self.dir = Path(root) / project / table
        if not self.dir.is_dir():
            raise DataError(f"table {project}.{table} does not exist (no directory {self.dir})",
                            file=f"odps://{project}/tables/{table}")
        self._files: dict[str, list[Path]] = {}
        for f in sorted(self.dir.rglob("*.parquet")):
            rel = f.parent.relative_to(self.dir).as_posix()
            part = "" if rel == "." else rel
            self._files.setdefault(part, []).append(f)
        self._counts: dict[Path, int] = {}

    def partitions(self) -> list[str]:
        return sorted(self._files) or [""]

    def schema(self) -> pa.Schema:
        for files in self._files.values():
            return pq.read_schema(files[0]).remove_metadata()
        raise DataError("table has no data files", file=str(self.dir))

    def _count(self, f: Path) -> int:
        if f not in self._counts:
            self._counts[f] = pq.ParquetFile(f).metadata.num_rows
        return self._counts[f]

    def count(self, partition: str) -> int:
        return sum(self._count(f) for f in self._files.get(partition, []))

    def read(self, partition: str, start: int, count: int, columns: list[str] | None,
             batch_rows: int) -> Iterator[pa.RecordBatch]:
        end = start + count
        offset = 0
        for f in self._files.get(partition, []):
            n = self._count(f)
            lo, hi = max(start, offset), min(end, offset + n)
            if lo < hi:
                pf = pq.ParquetFile(f)
                meta = pf.metadata
                rg_start = offset
                for rg in range(meta.num_row_groups):
                    rg_n = meta.row_group(rg).num_rows
                    a, b = max(lo, rg_start), min(hi, rg_start + rg_n)
                    if a < b:
                        table = pf.read_row_group(rg, columns=columns)
                        for batch in table.slice(a - rg_start, b - a).to_batches(batch_rows):
                            yield batch
                    rg_start += rg_n
            offset += n
            if offset >= end:
                return


class PyOdpsTableReader(TableReader):
    """The real MaxCompute table tunnel (Arrow) through pyodps."""

    def __init__(self, project: str, table: str, options: dict | None = None,
                 retry: RetryPolicy | None = None) -> None:
        from dataio.credentials import resolve_odps

        creds = resolve_odps(options)
        self._retry = retry or RetryPolicy()
        self._endpoint = creds.endpoint
        self._where = f"odps://{project}/tables/{table}"

        def connect():
            from odps import ODPS

            o = ODPS(creds.access_id, creds.access_key.reveal(), project=project,
                     endpoint=creds.endpoint)
            t = o.get_table(table)
            t.reload()  # fetch the metadata now: a wrong name or key fails here, clearly
            return t

        self._table = self._call(connect, "open the table")
        self._readers: dict[str, object] = {}

    def _call(self, fn, what: str):
        from dataio.files import remote_error
        from lingjie.errors import LingjieError

        try:
            return with_retries(fn, what=f"{what} {self._where}", endpoint=self._endpoint,
                                policy=self._retry, file=self._where)
        except LingjieError:
            raise
        except Exception as exc:  # pyodps' own errors: one clear, redacted DataError
            raise remote_error(exc, f"{what} {self._where}", self._where) from None

    def _part_cols(self) -> list[str]:
        return [c.name for c in self._table.table_schema.partitions]

    def partitions(self) -> list[str]:
        cols = self._part_cols()
        if not cols:
            return [""]
        specs = self._call(lambda: [p.partition_spec for p in self._table.iterate_partitions()],
                           "list partitions of")
        return sorted("/".join(f"{k}={spec[k]}" for k in cols) for spec in specs)

    def schema(self) -> pa.Schema:
        from odps.tunnel.io.types import odps_schema_to_arrow_schema

        part = set(self._part_cols())
        arrow = odps_schema_to_arrow_schema(self._table.table_schema)
        return pa.schema([f for f in arrow if f.name not in part])

    def _reader(self, partition: str):
        if partition not in self._readers:
            spec = partition.replace("/", ",") or None
            self._readers[partition] = self._call(
                lambda: self._table.open_reader(partition=spec, arrow=True, reopen=True),
                f"open a download session ({partition or 'whole table'}) of")
        return self._readers[partition]

    def count(self, partition: str) -> int:
        return int(self._reader(partition).count)

    def read(self, partition: str, start: int, count: int, columns: list[str] | None,
             batch_rows: int) -> Iterator[pa.RecordBatch]:
        reader = self._reader(partition)
        for batch in reader.read(start=start, count=count, columns=columns,
                                 append_partitions=False):
            for piece in pa.Table.from_batches([batch]).to_batches(batch_rows):
                yield piece


class OdpsSource:
    """MaxCompute table rows as record batches, with :class:`~dataio.source.Source`'s stream API.

    ``columns`` selects columns, ``partition`` (a filter or list of filters, OR-ed) overrides
    the URL's partition filter, ``required_columns`` + ``on_error`` treat nulls as bad rows
    (``raise`` names the partition and row; ``skip`` drops and counts them). ``reader``
    supplies a :class:`TableReader` (default: local when ``options["local_root"]`` is set,
    else the real service). ``stats`` has the keys of ``Source.stats``, keyed by partition.
    """

    def __init__(self, url: str, columns: Sequence[str] | None = None,
                 partition: str | Sequence[str] | None = None, *,
                 required_columns: Sequence[str] = (), on_error: str = "raise",
                 read_rows: int = 65536, reader: TableReader | None = None,
                 options: dict | None = None, retry: RetryPolicy | dict | None = None) -> None:
        self.url = OdpsTableUrl.parse(url)
        if on_error not in ("raise", "skip"):
            raise ConfigError("on_error", f"must be 'raise' or 'skip', got {on_error!r}",
                              ["raise", "skip"])
        if not isinstance(read_rows, int) or isinstance(read_rows, bool) or read_rows < 1:
            raise ConfigError("read_rows", f"must be a positive integer, got {read_rows!r}")
        if columns is not None and (isinstance(columns, str) or not columns):
            raise ConfigError("columns", f"must be a non-empty list of column names, got {columns!r}")
        self.columns = list(dict.fromkeys(columns)) if columns is not None else None
        self.required_columns = list(dict.fromkeys(required_columns))
        self.on_error = on_error
        self.read_rows = read_rows
        options = dict(options or {})
        if reader is None:
            local_root = options.pop("local_root", None)
            reader = (LocalTableReader(local_root, self.url.project, self.url.table) if local_root
                      else PyOdpsTableReader(self.url.project, self.url.table, options,
                                             RetryPolicy.of(retry)))
        self.reader = reader
        if partition is None:
            filters = [self.url.partition]
        elif isinstance(partition, str):
            filters = [parse_partition_filter(partition)]
        else:
            filters = [parse_partition_filter(p) for p in partition]
        available = reader.partitions()
        chosen = [p for p in available if any(partition_matches(p, f) for f in filters)] \
            if any(filters) else list(available)
        if not chosen:
            shown = ", ".join(available[:10]) + (", ..." if len(available) > 10 else "")
            raise DataError(f"no partition matches {['/'.join(f'{k}={v}' for k, v in f) for f in filters]}"
                            f" (partitions: {shown or 'none'})", file=self.url.shown())
        self.partitions = chosen
        self.files = [self.url.shown() + (f"/{p}" if p else "") for p in chosen]
        self._counts: dict[str, int] | None = None
        self.stats: dict = self._fresh_stats()

    # ------------------------------------------------------------------ schema
    def schema(self) -> pa.Schema:
        full = self.reader.schema()
        require_columns(list(self.columns or []) + self.required_columns, full.names,
                        self.url.shown())
        return pa.schema([full.field(n) for n in (self.columns or full.names)])

    def check_columns(self, needed: Iterable[str]) -> None:
        require_columns(needed, self.schema().names, self.url.shown())

    def counts(self) -> dict[str, int]:
        """Rows per selected partition."""
        if self._counts is None:
            self._counts = {p: self.reader.count(p) for p in self.partitions}
        return dict(self._counts)

    def count_rows(self) -> int:
        return sum(self.counts().values())

    # ------------------------------------------------------------------ stream
    @staticmethod
    def _fresh_stats() -> dict:
        return {"rows_read": 0, "bad_rows": 0, "bad_rows_by_file": {}, "empty_files": 0,
                "files_read": 0}

    def shard_ranges(self, shard: Shard) -> list[tuple[str, int, int]]:
        """``(partition, start, count)`` segments of this shard's contiguous row range."""
        counts = self.counts()
        total = sum(counts.values())
        lo, hi = total * shard.index // shard.count, total * (shard.index + 1) // shard.count
        out, offset = [], 0
        for p in self.partitions:
            n = counts[p]
            a, b = max(lo, offset), min(hi, offset + n)
            if a < b:
                out.append((p, a - offset, b - a))
            offset += n
        return out

    def _chunks(self, shard: Shard) -> list[tuple[str, int, int]]:
        chunks = []
        for p, start, count in self.shard_ranges(shard):
            for s in range(start, start + count, self.read_rows):
                chunks.append((p, s, min(self.read_rows, start + count - s)))
        return chunks

    def _read_chunks(self, chunks: list[tuple[str, int, int]], target: pa.Schema,
                     ) -> Iterator[pa.RecordBatch]:
        names = list(target.names) + [c for c in self.required_columns if c not in target.names]
        seen: set[str] = set()
        for p, start, count in chunks:
            where = self.url.shown() + (f"/{p}" if p else "")
            if p not in seen:
                seen.add(p)
                self.stats["files_read"] += 1
            row = start
            for batch in self.reader.read(p, start, count, names, self.read_rows):
                batch = self._drop_null_required(where, batch, row)
                row += batch.num_rows
                batch = batch.select(target.names)
                if not batch.schema.equals(target):
                    batch = batch.cast(target)
                if batch.num_rows:
                    self.stats["rows_read"] += batch.num_rows
                    yield batch

    def _drop_null_required(self, where: str, batch: pa.RecordBatch, first_row: int,
                            ) -> pa.RecordBatch:
        valid = None
        for name in self.required_columns:
            ok = pc.is_valid(batch.column(name))
            valid = ok if valid is None else pc.and_(valid, ok)
        if valid is None:
            return batch
        bad = batch.num_rows - pc.sum(valid).as_py()
        if not bad:
            return batch
        if self.on_error == "raise":
            first = int(np.argmin(valid.to_numpy(zero_copy_only=False)))
            raise DataError("null in a required column (set on_error='skip' to drop such rows)",
                            file=where, row=first_row + first)
        self.stats["bad_rows"] += bad
        by = self.stats["bad_rows_by_file"]
        by[where] = by.get(where, 0) + bad
        return batch.filter(valid)

    def iter_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                     epoch: int = 0, shuffle_buffer_rows: int = 100_000, rank: int = 0,
                     world_size: int = 1, worker: int = 0, num_workers: int = 1,
                     skip_batches: int = 0, limit_rows: int | None = None,
                     ) -> Iterator[pa.RecordBatch]:
        """Same arguments and guarantees as :meth:`dataio.source.Source.iter_batches`, with
        contiguous row-range sharding; ``shuffle`` permutes this shard's chunks and rows."""
        for name, value, minimum in (("batch_size", batch_size, 1), ("skip_batches", skip_batches, 0),
                                     ("shuffle_buffer_rows", shuffle_buffer_rows, 1),
                                     ("seed", seed, 0), ("epoch", epoch, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
                raise ConfigError(name, f"must be an integer >= {minimum}, got {value!r}")
        shard = Shard.of(rank, world_size, worker, num_workers)
        target = self.schema()
        return self._stream(batch_size, shuffle, seed, epoch, shuffle_buffer_rows, shard,
                            skip_batches, limit_rows, target)

    def _stream(self, batch_size, shuffle, seed, epoch, buffer_rows, shard, skip_batches,
                limit_rows, target) -> Iterator[pa.RecordBatch]:
        self.stats = self._fresh_stats()
        chunks = self._chunks(shard)
        if shuffle:
            order = np.random.default_rng([seed, epoch, shard.index]).permutation(len(chunks))
            chunks = [chunks[i] for i in order]
            rows = shuffle_rows(self._read_chunks(chunks, target), buffer_rows,
                                np.random.default_rng([seed, epoch, shard.index, 1]))
        else:
            rows = self._read_chunks(chunks, target)
        rows = take_rows(rows, limit_rows)
        rows = drop_rows(rows, skip_batches * batch_size)
        yield from rebatch(rows, batch_size)

    def close(self) -> None:
        self.reader.close()

    def __repr__(self) -> str:
        return (f"OdpsSource({self.url.shown()!r}, {len(self.partitions)} partition(s), "
                f"reader={type(self.reader).__name__})")

