"""Message payloads -> Arrow: JSON lines, CSV with a declared field order, Arrow IPC streams.

A decoder turns a list of message values into one Arrow table of the good ones and a list of
``(index, reason)`` for the bad ones, vectorised: the values of a poll are joined and parsed
by pyarrow in one call; only when that fails is the list bisected to isolate the bad messages
(``O(bad * log n)`` extra parses, none when all are good).

The output schema is fixed: the declared one, or the one inferred from the first good
messages (columns that were all null become strings). Later messages that do not fit it
(a string where a number was, a CSV line with the wrong field count) are bad messages.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from lingjie.errors import ConfigError

FORMATS = ("json", "csv", "arrow")
_FORMAT_ALIASES = {"json": "json", "jsonl": "json", "ndjson": "json", "csv": "csv",
                   "arrow": "arrow", "ipc": "arrow", "arrow_ipc": "arrow"}


def normalise_format(name: str) -> str:
    """``json`` / ``csv`` / ``arrow`` from a name or alias; ConfigError otherwise."""
    fmt = _FORMAT_ALIASES.get(str(name).lower())
    if fmt is None:
        raise ConfigError("format", f"unknown message format {name!r}", list(FORMATS))
    return fmt


def as_schema(schema: pa.Schema | Mapping[str, str | pa.DataType] | None) -> pa.Schema | None:
    """A pyarrow schema from a schema or a ``{name: type}`` mapping (types as pyarrow aliases,
    e.g. ``int64``, ``float32``, ``string``, ``bool``, or ``list<int64>``)."""
    if schema is None or isinstance(schema, pa.Schema):
        return schema
    if not isinstance(schema, Mapping):
        raise ConfigError("schema", f"must be a mapping of column name to type, got {schema!r}")
    fields = []
    for name, typ in schema.items():
        fields.append(pa.field(str(name), _parse_type(name, typ)))
    return pa.schema(fields)


def _parse_type(name: str, typ: str | pa.DataType) -> pa.DataType:
    if isinstance(typ, pa.DataType):
        return typ
    text = str(typ).strip().lower()
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(_parse_type(name, text[5:-1]))
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError):
        raise ConfigError(f"schema.{name}", f"unknown type {typ!r}",
                          ["int64", "int32", "float64", "float32", "string", "bool",
                           "list<int64>", "list<string>"]) from None


def _widen_nulls(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])


BadList = list[tuple[int, str]]


def _isolate(values: Sequence[bytes], parse: Callable[[Sequence[bytes]], pa.Table],
             ) -> tuple[list[pa.Table], BadList]:
    """Parse all values at once; on failure bisect until each bad value is alone."""
    tables: list[pa.Table] = []
    bad: BadList = []
    todo = [(0, len(values))]
    while todo:
        lo, hi = todo.pop()
        if lo >= hi:
            continue
        try:
            table = parse(values[lo:hi])
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            if hi - lo == 1:
                bad.append((lo, " ".join(str(exc).split())[:300]))
            else:
                mid = (lo + hi) // 2
                todo.extend([(mid, hi), (lo, mid)])  # the earlier half comes off first
            continue
        if table.num_rows != hi - lo:
            # a value that parsed into no row (or several) is wrong for a one-row-per-message format
            if hi - lo == 1:
                bad.append((lo, f"expected one record, got {table.num_rows}"))
            else:
                mid = (lo + hi) // 2
                todo.extend([(mid, hi), (lo, mid)])
            continue
        tables.append(table)
    bad.sort()
    return tables, bad


class Decoder:
    """Decode message values of one format into tables of a fixed schema.

    ``fields``: the CSV field order (default: the schema's names). ``columns``: the output
    columns (default: all). ``schema``: column types; inferred from the first good messages
    when None and then fixed.
    """

    def __init__(self, format: str, schema: pa.Schema | None = None,
                 columns: Sequence[str] | None = None, fields: Sequence[str] | None = None,
                 csv_delimiter: str = ",") -> None:
        self.format = normalise_format(format)
        self.schema = schema
        self.columns = list(columns) if columns is not None else None
        if self.format == "csv":
            fields = list(fields) if fields is not None else (
                schema.names if schema is not None else self.columns)
            if not fields:
                raise ConfigError("columns", "CSV messages need the field order: give `schema` "
                                             "(ordered) or `columns`")
            self.fields = list(fields)
        else:
            self.fields = None
        if schema is not None and self.columns is not None:
            missing = [c for c in self.columns if c not in schema.names]
            if missing:
                raise ConfigError("columns", f"columns {missing} are not in the schema "
                                             f"{schema.names}")
        if not isinstance(csv_delimiter, str) or len(csv_delimiter) != 1:
            raise ConfigError("csv_delimiter", f"must be one character, got {csv_delimiter!r}")
        self.csv_delimiter = csv_delimiter

    # -- per format: values -> table (raises on any bad value)
    def _parse_json(self, values: Sequence[bytes]) -> pa.Table:
        block = b"\n".join(v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values) + b"\n"
        parse = pajson.ParseOptions(
            explicit_schema=self.schema,
            unexpected_field_behavior="ignore" if self.schema is not None else "infer")
        read = pajson.ReadOptions(use_threads=False, block_size=max(len(block) + 1, 1 << 16))
        return pajson.read_json(io.BytesIO(block), read_options=read, parse_options=parse)

    def _parse_csv(self, values: Sequence[bytes]) -> pa.Table:
        block = b"\n".join(v.rstrip(b"\r\n") for v in values) + b"\n"
        types = {f.name: f.type for f in self.schema} if self.schema is not None else {}
        return pacsv.read_csv(
            io.BytesIO(block),
            read_options=pacsv.ReadOptions(column_names=self.fields, use_threads=False,
                                           block_size=max(len(block) + 1, 1 << 16)),
            parse_options=pacsv.ParseOptions(delimiter=self.csv_delimiter,
                                             newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))

    def _parse_arrow(self, value: bytes) -> pa.Table:
        if value[:6] == b"ARROW1":
            table = pa.ipc.open_file(pa.BufferReader(value)).read_all()
        else:
            table = pa.ipc.open_stream(pa.BufferReader(value)).read_all()
        return self._conform(table)

    def _conform(self, table: pa.Table) -> pa.Table:
        if self.schema is None:
            return table
        missing = [n for n in self.schema.names if n not in table.column_names]
        if missing:
            raise ValueError(f"missing fields {missing}")
        table = table.select(self.schema.names)
        return table if table.schema.equals(self.schema) else table.cast(self.schema)

    # -- public
    def decode(self, values: Sequence[bytes | None],
               ) -> tuple[pa.Table | None, BadList, list[int] | None]:
        """The good values as one table (output columns, fixed schema), the bad ones as
        ``(index, reason)``, and for Arrow the row count of each good message (JSON and CSV
        messages are one row each: None)."""
        bad: BadList = []
        keep: list[int] = []
        for i, v in enumerate(values):
            if not v or not v.strip():
                bad.append((i, "empty message"))
            else:
                keep.append(i)
        tables: list[pa.Table] = []
        if self.format == "arrow":
            for i in keep:
                try:
                    table = self._parse_arrow(values[i])
                except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
                    bad.append((i, " ".join(str(exc).split())[:300]))
                    continue
                if self.schema is None:
                    self.schema = _widen_nulls(table.schema)
                    table = self._conform(table)
                tables.append(table)
        elif keep:
            parse = self._parse_json if self.format == "json" else self._parse_csv
            sub = [values[i] for i in keep]
            if self.schema is None:  # infer from the first good values, then fix the schema
                first, first_bad = _isolate(sub, parse)
                if first:
                    self.schema = _widen_nulls(first[0].schema)
                    good_ix = [k for k in range(len(sub)) if k not in {b for b, _ in first_bad}]
                    # re-parse with the fixed schema so every table agrees on types
                    tables, again_bad = _isolate([sub[k] for k in good_ix], parse)
                    first_bad += [(good_ix[k], r) for k, r in again_bad]
                bad += [(keep[k], r) for k, r in first_bad]
            else:
                tables, sub_bad = _isolate(sub, parse)
                bad += [(keep[k], r) for k, r in sub_bad]
        bad.sort()
        counts = [t.num_rows for t in tables] if self.format == "arrow" else None
        if not tables:
            return None, bad, counts
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if self.columns is not None:
            missing = [c for c in self.columns if c not in table.column_names]
            if missing:
                from dataio.columns import missing_columns_error

                raise missing_columns_error(missing, table.column_names, None)
            table = table.select(self.columns)
        return table, bad, counts

    def output_schema(self) -> pa.Schema | None:
        """The schema of decoded tables, once known."""
        if self.schema is None:
            return None
        names = self.columns or self.schema.names
        return pa.schema([self.schema.field(n) for n in names])
