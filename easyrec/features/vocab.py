"""Streaming vocabulary counting with bounded per-batch work.

Each batch is reduced to (distinct value, count) pairs by Arrow; pairs are buffered and
merged by an Arrow group-by only when the buffer grows large, so fitting costs
O(rows + distinct values) without a Python loop over values, and memory is bounded by the
number of distinct values (plus the buffer), never by the number of rows.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from easyrec.features.columns import as_string_array

_MERGE_AT = 1 << 20  # buffered (value, count) pairs before a merge


class VocabCounter:
    """Counts string forms of values across batches."""

    def __init__(self) -> None:
        self._merged: pa.Table | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def update(self, values: pa.Array) -> None:
        """Add one batch of values (any scalar type; nulls ignored)."""
        strings = as_string_array(values)
        if strings.null_count:
            strings = strings.drop_null()
        if len(strings) == 0:
            return
        vc = pc.value_counts(strings)
        counts = pc.cast(vc.field("counts"), pa.int64())
        t = pa.table({"value": vc.field("values"), "count": counts})
        self._pending.append(t)
        self._pending_rows += len(t)
        if self._pending_rows >= _MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        parts = ([self._merged] if self._merged is not None else []) + self._pending
        self._pending, self._pending_rows = [], 0
        if not parts:
            return
        if len(parts) == 1:
            self._merged = parts[0]
            return
        t = pa.concat_tables(parts).group_by("value").aggregate([("count", "sum")])
        self._merged = t.select(["value", "count_sum"]).rename_columns(["value", "count"])

    def counts(self) -> pa.Table:
        """All (value, count) pairs seen so far."""
        self._merge()
        if self._merged is None:
            return pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
        return self._merged

    def vocabulary(self, min_count: int, max_size: int | None) -> list[str]:
        """Values with count >= min_count, most frequent first, ties by value; at most max_size."""
        t = self.counts()
        t = t.filter(pc.greater_equal(t["count"], min_count))
        t = t.sort_by([("count", "descending"), ("value", "ascending")])
        if max_size is not None:
            t = t.slice(0, max_size)
        return t["value"].to_pylist()
