"""Per-format record readers; :func:`reader_for` picks one by a file's format.

Each module exposes ``peek_schema(file, opts)`` and ``read(file, opts, wanted, on_bad)``
with the contract described in :mod:`dataio.readers.base`.
"""
from __future__ import annotations

from types import ModuleType

from dataio.readers import csv, jsonl, parquet
from dataio.readers.base import BadRowHandler, ReadOptions, RecordStream, RowRangeFilter, always_wanted

_BY_FORMAT = {"parquet": parquet, "csv": csv, "jsonl": jsonl}


def reader_for(format: str) -> ModuleType:
    """The reader module for ``format`` (one of ``parquet``, ``csv``, ``jsonl``)."""
    return _BY_FORMAT[format]


__all__ = ["BadRowHandler", "ReadOptions", "RecordStream", "RowRangeFilter", "always_wanted",
           "reader_for"]
