"""Getting input columns out of Arrow batches in the few shapes the features need.

Sources hand us RecordBatches (or Tables) whose column types depend on the file format:
ids may be int64 in parquet and strings in CSV, multi-value columns may be real lists or
"a|b|c" strings, and parquet categoricals arrive dictionary-encoded. These helpers turn any
of those into one canonical form per use (string values, float64 values, flat list values
plus row ids), so each feature handles exactly one shape. All vectorised.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lingjie.errors import DataError


def get_column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    """One column as a contiguous Array; DataError naming the available columns if absent."""
    idx = batch.schema.get_field_index(name)
    if idx < 0:
        raise DataError(
            f"column '{name}' is missing from the input; available columns: "
            f"{', '.join(batch.schema.names) or '(none)'}"
        )
    col = batch.column(idx)
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return col


def check_columns(batch: pa.RecordBatch | pa.Table, names: list[str]) -> None:
    """DataError listing every missing column at once (better than one per retry)."""
    present = set(batch.schema.names)
    missing = [n for n in names if n not in present]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(repr(m) for m in missing)} in the input; "
            f"available columns: {', '.join(batch.schema.names) or '(none)'}"
        )


def is_list(arr: pa.Array) -> bool:
    t = arr.type
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def as_string_array(arr: pa.Array, column: str = "") -> pa.Array:
    """Each value's canonical string form (utf8); null and NaN stay null.

    Floats that hold integers print without a fraction ("5", not "5.0"), so an id column
    read as float (pandas with NaN) hashes and looks up like the same column read as int.
    """
    t = arr.type
    if pa.types.is_dictionary(t):
        return as_string_array(arr.dictionary_decode(), column)
    if pa.types.is_string(t):
        return arr
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_floating(t):
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, t), arr)
    if is_list(arr) or pa.types.is_struct(t) or pa.types.is_map(t):
        raise DataError(
            f"column '{column}' holds {t} values where one scalar per row is expected "
            "(use type: tag or sequence for multi-value columns)"
        )
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column '{column}' of type {t} cannot be read as text: {exc}") from exc


def dictionary_codes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(codes int64 [n] with -1 for null, distinct string values as a numpy object array).

    Lets lookups and hashes run once per distinct value instead of once per row.
    """
    enc = pc.dictionary_encode(as_string_array(arr))
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    uniques = enc.dictionary.to_numpy(zero_copy_only=False)
    return codes, uniques


def as_float64(arr: pa.Array, column: str = "") -> np.ndarray:
    """float64 numpy array; null -> NaN. DataError if the column is not numeric."""
    t = arr.type
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    if is_list(arr) or pa.types.is_struct(t):
        raise DataError(f"column '{column}' holds {t} values; a raw feature needs numbers")
    try:
        f = pc.cast(arr, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column '{column}' of type {t} is not numeric: {exc}") from exc
    return f.to_numpy(zero_copy_only=False)  # nulls become NaN


@dataclass
class ListParts:
    """A multi-value column flattened: ``values[i]`` belongs to row ``row_ids[i]``."""

    values: pa.Array  # flat values, nulls and empty strings removed
    row_ids: np.ndarray  # int64 [nnz], non-decreasing
    num_rows: int

    def lengths(self) -> np.ndarray:
        return np.bincount(self.row_ids, minlength=self.num_rows).astype(np.int64)

    def offsets(self) -> np.ndarray:
        out = np.zeros(self.num_rows + 1, dtype=np.int64)
        np.cumsum(self.lengths(), out=out[1:])
        return out


def list_parts(arr: pa.Array, separator: str, column: str = "") -> ListParts:
    """Flatten a list column, or split a string column on ``separator`` (items trimmed).

    Null rows become empty; null items and empty strings are dropped (so "" and "a||b" do
    what a user expects).
    """
    n = len(arr)
    if pa.types.is_null(arr.type):
        return ListParts(pa.array([], pa.string()), np.zeros(0, np.int64), n)
    split = False
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.split_pattern(arr, separator)
        split = True
    elif not is_list(arr):
        raise DataError(
            f"column '{column}' holds {arr.type}; a multi-value feature needs a list column "
            f"or a string column separated by '{separator}'"
        )
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(arr)
    if pa.types.is_dictionary(flat.type):
        flat = flat.dictionary_decode()
    row_ids = np.repeat(np.arange(n, dtype=np.int64), lengths.astype(np.int64))
    if split:
        flat = pc.utf8_trim_whitespace(flat)
    keep = pc.is_valid(flat)
    if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type):
        keep = pc.and_kleene(keep, pc.greater(pc.utf8_length(flat), 0))
    elif pa.types.is_floating(flat.type):
        keep = pc.and_kleene(keep, pc.invert(pc.is_nan(flat)))
    keep = pc.fill_null(keep, False)
    keep_np = keep.to_numpy(zero_copy_only=False)
    if not keep_np.all():
        flat = flat.filter(keep)
        row_ids = row_ids[keep_np]
    return ListParts(flat, row_ids, n)
