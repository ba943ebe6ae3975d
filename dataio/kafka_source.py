"""Kafka -> Arrow record batches with exact, caller-controlled offsets (the stream-mode source).

    src = KafkaSource("kafka://broker:9092/clicks?group=ctr&offset=earliest", format="json",
                      schema={"user_id": "int64", "item_id": "int64", "click": "int8"},
                      on_error="skip", dead_letter_path="bad.jsonl",
                      rank=rank, world_size=world_size)
    src.seek(checkpoint.get("kafka_offsets", {}))      # resume exactly (optional)
    for batch, offsets in src.iter_batches(1024, max_wait_s=1.0):
        train_step(batch)
        if time_to_checkpoint:
            save(model, kafka_offsets=offsets)           # offsets AFTER this batch
            src.commit(offsets)                          # only once the checkpoint is durable
    src.close()

Rules that make resume exact:

- partitions are assigned manually (no group rebalancing): the sorted ``(topic, partition)``
  list is dealt round-robin over ranks, partition ``i`` to rank ``i % world_size``;
- the group (``?group=``) is only used to store committed offsets, and only when the caller
  calls :meth:`KafkaSource.commit`; auto-commit is off;
- each yielded ``offsets`` maps every assigned ``(topic, partition)`` to the offset of the
  next record to read *after* this batch (bad messages that were skipped included), so
  :meth:`KafkaSource.seek` with it continues with exactly the next record;
- where to start when nothing was sought: ``offset=`` in the URL (``earliest``, ``latest`` or
  a timestamp in ms since the epoch) if given; otherwise the group's committed offset if any;
  otherwise ``earliest``. Start offsets are resolved to numbers when the source is built.

URL: ``kafka://host:port[,host:port...]/topic[,topic...]?group=G&offset=earliest|latest|<ms>
&format=json|csv|arrow``. Credentials never go in the URL: SASL comes from
``KAFKA_SASL_USERNAME`` / ``KAFKA_SASL_PASSWORD`` (see :mod:`dataio.credentials`).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pyarrow as pa

from dataio.credentials import (kafka_security_options, looks_secret_key, redact, redact_options,
                                remember_secret)
from dataio.messages import Decoder, as_schema, normalise_format
from dataio.retry import RetryPolicy, describe, with_retries
from lingjie.errors import ConfigError, DataError
from lingjie.schema import close_names

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]
METADATA_COLUMNS = ("_kafka_topic", "_kafka_partition", "_kafka_offset", "_kafka_timestamp_ms")
_QUERY_KEYS = ("group", "offset", "format")
_ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class KafkaUrl:
    """A parsed ``kafka://`` URL."""

    brokers: tuple[str, ...]
    topics: tuple[str, ...]
    group: str | None
    offset: str | int | None
    format: str | None

    @classmethod
    def parse(cls, url: str) -> "KafkaUrl":
        if not isinstance(url, str) or not url.lower().startswith("kafka://"):
            raise ConfigError("path", f"not a kafka:// URL: {redact(url)!r}")
        rest = url[len("kafka://"):]
        rest, _, query = rest.partition("?")
        netloc, _, path = rest.partition("/")
        if "@" in netloc:
            raise ConfigError("path", "do not put credentials in a kafka:// URL; set "
                                      "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD instead")
        brokers = tuple(b.strip() for b in netloc.split(",") if b.strip())
        topics = tuple(t.strip() for t in path.strip("/").split(",") if t.strip())
        if not brokers:
            raise ConfigError("path", f"{url!r} names no broker: kafka://host:port/topic")
        if not topics:
            raise ConfigError("path", f"{url!r} names no topic: kafka://host:port/topic")
        for b in brokers:
            host, _, port = b.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError("path", f"broker {b!r} in {url!r} must be host:port")
        params: dict[str, str] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            if k not in _QUERY_KEYS:
                raise ConfigError(f"path?{k}", f"unknown kafka URL parameter {k!r}",
                                  close_names(k, _QUERY_KEYS, n=2) or list(_QUERY_KEYS))
            params[k] = v
        return cls(brokers, topics, params.get("group") or None,
                   parse_offset(params["offset"]) if "offset" in params else None,
                   params.get("format") or None)

    def shown(self) -> str:
        return f"kafka://{','.join(self.brokers)}/{','.join(self.topics)}"


def parse_offset(value: str | int | None) -> str | int | None:
    """``earliest`` / ``latest`` / a non-negative timestamp in ms (int), or None."""
    if value is None or isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).strip().lower()
    if text in ("earliest", "latest"):
        return text
    if text.isdigit():
        return int(text)
    raise ConfigError("offset", f"must be earliest, latest or a timestamp in ms, got {value!r}",
                      ["earliest", "latest"])


def offsets_to_json(offsets: Mapping[tuple[str, int], int]) -> dict[str, int]:
    """``{(topic, partition): offset}`` as ``{"topic:partition": offset}`` (JSON-safe)."""
    return {f"{t}:{p}": int(o) for (t, p), o in sorted(offsets.items())}


def offsets_from_json(data: Mapping[Any, int]) -> Offsets:
    """The inverse of :func:`offsets_to_json`; tuple keys pass through."""
    out: Offsets = {}
    for key, off in data.items():
        if isinstance(key, str):
            topic, sep, part = key.rpartition(":")
            if not sep or not part.isdigit():
                raise ConfigError("offsets", f"key {key!r} is not 'topic:partition'")
            out[(topic, int(part))] = int(off)
        else:
            topic, part = key
            out[(str(topic), int(part))] = int(off)
    return out


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(name, f"must be an integer >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(name, f"must be a non-negative number of seconds, got {value!r}")


class KafkaSource:
    """Consume Kafka topics as Arrow record batches; see the module docstring for the contract.

    - ``format``: ``json`` (one JSON object per message), ``csv`` (one line per message, fields
      in the order of ``schema`` or, without a schema, of ``columns``) or ``arrow`` (an Arrow
      IPC stream per message, any number of rows); default from the URL's ``format=``, else json.
    - ``schema``: a pyarrow schema or ``{column: type}``; without one, types are inferred from
      the first good messages and then fixed. ``columns`` selects the output columns.
    - ``on_error``: a message that cannot be decoded (or does not fit the schema) is skipped
      and counted (``skip``) or raises a DataError naming topic, partition and offset
      (``raise``); with ``dead_letter_path`` it is first appended there as a JSON line
      ``{topic, partition, offset, timestamp_ms, key_b64, raw_b64, error}``.
    - ``rank`` / ``world_size``: which partitions this reader owns (round-robin).
    - ``metadata_columns``: add ``_kafka_topic``, ``_kafka_partition``, ``_kafka_offset``,
      ``_kafka_timestamp_ms`` to each batch.
    - ``group`` / ``offset`` override the URL's; ``consumer_options`` are passed to
      kafka-python's ``KafkaConsumer`` over Lingjie's defaults; ``retry`` bounds connecting.

    ``stats``: ``messages`` (consumed), ``rows`` (yielded), ``bad_messages``,
    ``dead_lettered``, ``batches``, ``bytes`` (message values), ``by_partition``
    (``{"topic:partition": messages}``).
    """

    def __init__(self, url: str, format: str | None = None, *,
                 columns: Sequence[str] | None = None,
                 schema: pa.Schema | Mapping[str, str | pa.DataType] | None = None,
                 on_error: str = "raise", dead_letter_path: str | os.PathLike | None = None,
                 rank: int = 0, world_size: int = 1, csv_delimiter: str = ",",
                 metadata_columns: bool = False, group: str | None = None,
                 offset: str | int | None = None, consumer_options: dict | None = None,
                 retry: RetryPolicy | dict | None = None) -> None:
        self.url = KafkaUrl.parse(url)
        self.group = group or self.url.group
        self.start_offset = parse_offset(offset) if offset is not None else self.url.offset
        self.format = normalise_format(format or self.url.format or "json")
        if on_error not in _ON_ERROR:
            raise ConfigError("on_error", f"must be 'raise' or 'skip', got {on_error!r}", list(_ON_ERROR))
        _check_int("world_size", world_size, 1)
        _check_int("rank", rank, 0)
        if rank >= world_size:
            raise ConfigError("rank", f"need 0 <= rank < world_size, got rank={rank}, "
                                      f"world_size={world_size}")
        if columns is not None and (isinstance(columns, str) or not columns):
            raise ConfigError("columns", f"must be a non-empty list of column names, got {columns!r}")
        self.on_error = on_error
        self.rank, self.world_size = int(rank), int(world_size)
        self.metadata_columns = bool(metadata_columns)
        self.dead_letter_path = Path(dead_letter_path) if dead_letter_path else None
        self._decoder = Decoder(self.format, as_schema(schema), columns, csv_delimiter=csv_delimiter)
        self._retry = RetryPolicy.of(retry)
        self._options = dict(consumer_options or {})
        for k, v in self._options.items():
            if looks_secret_key(k) and isinstance(v, str):
                remember_secret(v)
        self.stats: dict = {"messages": 0, "rows": 0, "bad_messages": 0, "dead_lettered": 0,
                            "batches": 0, "bytes": 0, "by_partition": {}}
        self._consumer = None
        self._closed = False
        # decoded messages not yet yielded (an Arrow poll can bring more rows than a batch):
        # units are ((topic, partition), offset, rows) per message, tables hold their rows
        self._pending_units: list[tuple[tuple[str, int], int, int]] = []
        self._pending_tables: list[pa.Table] = []
        self._pending_rows = 0
        self._consumer = with_retries(self._connect, what="connect", endpoint=self.url.shown(),
                                      policy=self._retry, file=self.url.shown())
        try:
            self._tps = self._assign()
            self._pos: Offsets = {}
            self._start()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ set-up
    def _connect(self) -> Any:
        from kafka import KafkaConsumer

        config = {
            "bootstrap_servers": list(self.url.brokers),
            "group_id": self.group,
            "client_id": f"lingjie-{self.group or 'nogroup'}-{self.rank}",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 2000,
            "bootstrap_timeout_ms": int(min(self._retry.timeout_s, 5.0) * 1000),
            "key_deserializer": None,
            "value_deserializer": None,
            **kafka_security_options(self._options),
            **self._options,
        }
        log.debug("kafka consumer for %s: %s", self.url.shown(), redact_options(
            {k: v for k, v in config.items() if not callable(v)}))
        return KafkaConsumer(**config)

    def _partitions_of(self, topic: str) -> set[int]:
        def ask() -> set[int]:
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                raise _TopicNotFound(topic)
            return parts

        try:
            return with_retries(ask, what=f"find topic {topic!r}", endpoint=self.url.shown(),
                                policy=self._retry, file=self.url.shown())
        except DataError as exc:
            if "_TopicNotFound" not in str(exc):
                raise
            known = sorted(self._consumer.topics() or [])
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise DataError(f"topic {topic!r} does not exist on {','.join(self.url.brokers)} "
                            f"(topics there: {shown or 'none'})", file=self.url.shown()) from None

    def _assign(self) -> list[Any]:
        from kafka import TopicPartition

        all_tps = sorted((t, p) for t in self.url.topics for p in self._partitions_of(t))
        self.all_partitions: list[tuple[str, int]] = all_tps
        mine = [TopicPartition(t, p) for i, (t, p) in enumerate(all_tps)
                if i % self.world_size == self.rank]
        if not mine:
            log.warning("rank %d of %d owns none of the %d partition(s) of %s: it will read "
                        "nothing", self.rank, self.world_size, len(all_tps), self.url.shown())
        self._consumer.assign(mine)
        return mine

    def _start(self) -> None:
        """Resolve where each owned partition starts to a number (see the module docstring)."""
        consumer = self._consumer
        if not self._tps:
            return
        start = self.start_offset
        if start is None and self.group:
            committed = {tp: consumer.committed(tp) for tp in self._tps}
            rest = [tp for tp, off in committed.items() if off is None]
            for tp, off in committed.items():
                if off is not None:
                    consumer.seek(tp, off)
            if rest:
                consumer.seek_to_beginning(*rest)
        elif start is None or start == "earliest":
            consumer.seek_to_beginning(*self._tps)
        elif start == "latest":
            consumer.seek_to_end(*self._tps)
        else:
            found = consumer.offsets_for_times({tp: int(start) for tp in self._tps})
            late = []
            for tp in self._tps:
                hit = found.get(tp)
                # none at or after the time: start at the end (Tansu answers timestamp -1)
                if hit is None or hit.offset is None or hit.offset < 0 or hit.timestamp == -1:
                    late.append(tp)
                else:
                    consumer.seek(tp, hit.offset)
            if late:
                consumer.seek_to_end(*late)
        for tp in self._tps:
            self._pos[(tp.topic, tp.partition)] = int(consumer.position(tp))

    # ------------------------------------------------------------------ public API
    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this rank reads."""
        return [(tp.topic, tp.partition) for tp in self._tps]

    def positions(self) -> Offsets:
        """Next offset to read per owned partition (after the last yielded batch)."""
        return dict(self._pos)

    def schema(self) -> pa.Schema | None:
        """The batches' schema: declared, or inferred once the first good message arrived."""
        base = self._decoder.output_schema()
        if base is None or not self.metadata_columns:
            return base
        return base.append(pa.field(METADATA_COLUMNS[0], pa.string())) \
                   .append(pa.field(METADATA_COLUMNS[1], pa.int32())) \
                   .append(pa.field(METADATA_COLUMNS[2], pa.int64())) \
                   .append(pa.field(METADATA_COLUMNS[3], pa.int64()))

    def seek(self, offsets: Mapping[Any, int]) -> None:
        """Continue each owned partition named in ``offsets`` at that offset.

        Keys are ``(topic, partition)`` tuples or ``"topic:partition"`` strings (as written
        by :func:`offsets_to_json`); partitions owned by other ranks are ignored, so every
        rank may be given the merged offsets of all ranks. Call it before iterating or
        between batches.
        """
        wanted = offsets_from_json(offsets or {})
        unknown = sorted(k for k in wanted if k not in set(self.all_partitions))
        if unknown:
            log.warning("seek: ignoring offsets for partitions not in %s: %s",
                        self.url.shown(), unknown[:10])
        sought = set()
        for tp in self._tps:
            key = (tp.topic, tp.partition)
            if key in wanted:
                _check_int(f"offsets[{key}]", wanted[key], 0)
                self._consumer.seek(tp, int(wanted[key]))
                self._pos[key] = int(wanted[key])
                sought.add(key)
        if sought and self._pending_units:  # forget decoded-but-unyielded rows of those
            self._drop_pending(sought)

    def _drop_pending(self, keys: set[tuple[str, int]]) -> None:
        keep_rows = []
        row = 0
        units = []
        for unit in self._pending_units:
            if unit[0] not in keys:
                units.append(unit)
                if unit[2]:
                    keep_rows.append((row, unit[2]))
            row += unit[2]
        merged = pa.concat_tables(self._pending_tables) if self._pending_tables else None
        parts = [merged.slice(a, n) for a, n in keep_rows] if merged is not None else []
        self._pending_units = units
        self._pending_tables = [pa.concat_tables(parts)] if parts else []
        self._pending_rows = sum(n for _, n in keep_rows)

    def commit(self, offsets: Mapping[Any, int] | None = None) -> None:
        """Commit ``offsets`` (default: :meth:`positions`) to the group, synchronously.

        Call only once the checkpoint that holds these offsets is durable. Partitions not
        owned by this rank are left to their owners.
        """
        if not self.group:
            raise ConfigError("path?group", "commit needs a consumer group: add ?group=NAME "
                                            "to the kafka:// URL")
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        wanted = offsets_from_json(offsets) if offsets is not None else self.positions()
        mine = set(self.assignment)
        payload = {TopicPartition(t, p): OffsetAndMetadata(int(o), "", -1)
                   for (t, p), o in wanted.items() if (t, p) in mine}
        if not payload:
            return
        with_retries(lambda: self._consumer.commit(payload), what=f"commit offsets of group "
                     f"{self.group!r}", endpoint=self.url.shown(), policy=self._retry,
                     file=self.url.shown())

    def committed(self) -> Offsets:
        """The group's committed offsets for the owned partitions (absent: none committed)."""
        if not self.group:
            return {}
        out: Offsets = {}
        for tp in self._tps:
            off = self._consumer.committed(tp)
            if off is not None:
                out[(tp.topic, tp.partition)] = int(off)
        return out

    def iter_batches(self, batch_size: int, max_wait_s: float = 1.0, *,
                     idle_timeout_s: float | None = None, max_batches: int | None = None,
                     stop: Callable[[], bool] | None = None) -> Iterator[tuple[pa.RecordBatch, Offsets]]:
        """Yield ``(batch, offsets)``: the next records as one RecordBatch, and the offsets
        after it for every owned partition.

        A batch is yielded once it holds ``batch_size`` rows, or after ``max_wait_s`` with at
        least one row (never empty). JSON and CSV messages are one row each, so their batches
        have at most ``batch_size`` rows; Arrow messages are never split, so a batch may end
        with the rows of one message past ``batch_size``. The stream ends after
        ``idle_timeout_s`` without any message (None: never), after ``max_batches``, when
        the source is closed, or when ``stop()`` turns true (checked at least every
        ``max_wait_s`` while waiting: a SIGTERM to an idle consumer ends it, the rows already
        polled are yielded first).
        """
        _check_int("batch_size", batch_size, 1)
        _check_seconds("max_wait_s", max_wait_s)
        _check_seconds("idle_timeout_s", idle_timeout_s, allow_none=True)
        if max_batches is not None:
            _check_int("max_batches", max_batches, 0)
        return self._stream(int(batch_size), float(max_wait_s), idle_timeout_s, max_batches, stop or (lambda: False))

    def close(self) -> None:
        """Close the consumer (nothing is committed here)."""
        if self._consumer is not None and not self._closed:
            self._closed = True
            try:
                self._consumer.close(autocommit=False)
            except Exception as exc:  # closing must not hide the caller's error
                log.debug("closing kafka consumer: %s", describe(exc))

    def __enter__(self) -> "KafkaSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = ", ".join(f"{t}:{p}" for t, p in self.assignment[:8])
        more = ", ..." if len(self.assignment) > 8 else ""
        return (f"KafkaSource({self.url.shown()!r}, format={self.format!r}, group={self.group!r}, "
                f"rank={self.rank}/{self.world_size}, partitions=[{parts}{more}])")

    # ------------------------------------------------------------------ the stream
    def _stream(self, batch_size: int, max_wait_s: float, idle_timeout_s: float | None,
                max_batches: int | None, stop: Callable[[], bool]) -> Iterator[tuple[pa.RecordBatch, Offsets]]:
        per_row = self.format != "arrow"
        last_data = time.monotonic()
        yielded = 0
        while max_batches is None or yielded < max_batches:
            started = time.monotonic()
            while self._pending_rows < batch_size and not self._closed and not stop():
                now = time.monotonic()
                if self._pending_rows and now - started >= max_wait_s:
                    break
                if (not self._pending_rows and idle_timeout_s is not None
                        and now - last_data >= idle_timeout_s):
                    self._take(0)  # skipped (bad) messages are behind positions() too
                    return
                wait = max_wait_s - (now - started) if self._pending_rows else max_wait_s
                if not self._pending_rows and idle_timeout_s is not None:
                    wait = min(wait, idle_timeout_s - (now - last_data))
                need = batch_size - self._pending_rows
                polled = self._consumer.poll(timeout_ms=max(int(wait * 1000), 1),
                                             max_records=need if per_row else max(need, 1))
                if polled:
                    last_data = time.monotonic()
                    self._decode(polled)
            if not self._pending_rows:
                return
            batch = self._take(batch_size)
            self.stats["batches"] += 1
            self.stats["rows"] += batch.num_rows
            yielded += 1
            yield batch, dict(self._pos)
            # the caller's time between batches (a train step, an export) is not the topic's idleness
            last_data = max(last_data, time.monotonic())

    def _take(self, batch_size: int) -> pa.RecordBatch | None:
        """Cut the next batch off the pending messages (whole messages, in order) and move
        the positions past them; ``batch_size=0`` takes only leading bad messages."""
        rows = taken = 0
        units = self._pending_units
        while taken < len(units) and (rows < batch_size or units[taken][2] == 0):
            rows += units[taken][2]
            taken += 1
        for key, offset, _ in units[:taken]:
            self._pos[key] = offset + 1
        del units[:taken]
        if not rows:
            return None
        tables = self._pending_tables
        merged = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        rest = merged.slice(rows)
        self._pending_tables = [rest] if rest.num_rows else []
        self._pending_rows -= rows
        return merged.slice(0, rows).combine_chunks().to_batches()[0]

    def _decode(self, polled: dict) -> None:
        """Decode one poll's records into the pending rows and units (one per message)."""
        records = [r for tp in sorted(polled, key=lambda tp: (tp.topic, tp.partition))
                   for r in polled[tp]]
        if not records:
            return
        values = [r.value for r in records]
        self.stats["messages"] += len(records)
        self.stats["bytes"] += sum(len(v) for v in values if v)
        by_partition = self.stats["by_partition"]
        for r in records:
            key = f"{r.topic}:{r.partition}"
            by_partition[key] = by_partition.get(key, 0) + 1
        try:
            table, bad, counts = self._decoder.decode(values)
        except DataError as exc:  # e.g. a selected column that no message has
            raise DataError(str(exc).split(": ", 1)[-1], file=self.url.shown()) from None
        if bad:
            self._bad(records, bad)
        bad_ix = {i for i, _ in bad}
        good = [r for i, r in enumerate(records) if i not in bad_ix]
        sizes = counts if counts is not None else [1] * len(good)
        rows_of = iter(sizes)
        for i, r in enumerate(records):
            self._pending_units.append(((r.topic, r.partition), r.offset,
                                        0 if i in bad_ix else next(rows_of)))
        if table is None or not table.num_rows:
            return
        if self.metadata_columns:
            repeat = np.asarray(sizes, dtype=np.int64)
            meta = {
                METADATA_COLUMNS[0]: pa.array(np.repeat([r.topic for r in good], repeat), pa.string()),
                METADATA_COLUMNS[1]: pa.array(np.repeat([r.partition for r in good], repeat), pa.int32()),
                METADATA_COLUMNS[2]: pa.array(np.repeat([r.offset for r in good], repeat), pa.int64()),
                METADATA_COLUMNS[3]: pa.array(np.repeat([r.timestamp for r in good], repeat), pa.int64()),
            }
            for name, column in meta.items():
                table = table.append_column(name, column)
        self._pending_tables.append(table)
        self._pending_rows += table.num_rows

    def _bad(self, records: list, bad: list[tuple[int, str]]) -> None:
        self.stats["bad_messages"] += len(bad)
        if self.dead_letter_path is not None:
            lines = []
            for i, reason in bad:
                r = records[i]
                lines.append(json.dumps({
                    "topic": r.topic, "partition": r.partition, "offset": r.offset,
                    "timestamp_ms": r.timestamp, "format": self.format, "error": redact(reason),
                    "key_b64": base64.b64encode(r.key).decode() if r.key is not None else None,
                    "raw_b64": base64.b64encode(r.value or b"").decode(),
                }) + "\n")
            self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.dead_letter_path, "a", encoding="utf-8") as fh:
                fh.write("".join(lines))  # one write per poll: whole lines, even with several writers
            self.stats["dead_lettered"] += len(bad)
        if self.on_error == "raise":
            i, reason = bad[0]
            r = records[i]
            where = f" (also written to {self.dead_letter_path})" if self.dead_letter_path else ""
            raise DataError(f"malformed {self.format} message in partition {r.partition} at "
                            f"offset {r.offset}: {redact(reason)}{where}; set on_error='skip' to "
                            "skip such messages", file=f"{self.url.shown()}")


class _TopicNotFound(ConnectionError):
    """Raised inside a retry while a topic has no partitions yet (it may be being created)."""

    def __str__(self) -> str:
        return f"_TopicNotFound: {self.args[0]}"
