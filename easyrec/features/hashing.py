"""Stable 64-bit hashing of column values, identical across processes, machines and runs.

Python's ``hash()`` is salted per process, so it cannot map ids to embedding rows that must
match between training and serving. Values are first cast to their string form (so the int
``5`` and the string ``"5"`` land in the same bucket, whatever type a source reads), then
hashed with pandas' keyed SipHash. Each distinct value of a batch is hashed once (Arrow's
dictionary encoding), then broadcast back to the rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from easyrec.features.columns import dictionary_codes

HASH_KEY = "lingjie-hash-key"  # 16 bytes, part of the on-disk contract: never change it


def hash_strings(values: np.ndarray) -> np.ndarray:
    """uint64 hashes of a numpy object array of ``str``."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_array(values, hash_key=HASH_KEY, categorize=True).astype(np.uint64)


def hash_values(arr: pa.Array, null_hash: int = 0) -> np.ndarray:
    """uint64 hash of each value's string form; nulls get ``null_hash``."""
    codes, uniques = dictionary_codes(arr)
    table = np.append(hash_strings(uniques), np.uint64(null_hash))
    return table[codes]  # code -1 (null) picks the appended null_hash


def hash_to_buckets(arr: pa.Array, num_buckets: int) -> np.ndarray:
    """int64 bucket in [0, num_buckets) of each value; nulls go to bucket 0."""
    return (hash_values(arr) % np.uint64(num_buckets)).astype(np.int64)


def hash_to_int64(arr: pa.Array) -> np.ndarray:
    """The 64-bit hash reinterpreted as int64 (group keys for GAUC); nulls -> 0."""
    return hash_values(arr).view(np.int64)
