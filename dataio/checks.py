"""Value rules for numeric columns, checked on every chunk a source reads.

A source reads the same rows for feature fitting, training, evaluation and prediction, so a
rule checked here holds for all of them, and a bad row is raised or dropped-and-counted by the
one mechanism that already handles rows that do not parse (``on_error``, ``stats['bad_rows']``)
with the file and row named. The domain says which columns are numeric and what they may hold
(e.g. a binary label must be 0 or 1); this module only evaluates the rules, vectorised over the
chunk (numpy over the column's buffer; no Python loop per row): the loader is on the training
step's critical path.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class ColumnRule:
    """What the values of one numeric column may be.

    ``what`` names the thing in messages (e.g. "label 'like'"); ``hint`` is the fix appended to
    them (e.g. "set data.labels.like.threshold=<x> to binarise it"). NaN and null are the same
    to a model (both a missing number); ``allow_missing`` admits them where the domain fills
    them (a raw feature's ``fill_null``). Infinity is admitted only where ``allow_inf``.
    """

    column: str
    what: str
    allow_missing: bool = False
    allow_inf: bool = False
    binary: bool = False  # values must be 0 or 1
    hint: str = ""


@dataclass(frozen=True)
class Violation:
    """The rows of one chunk that break one rule: ``mask`` (True = bad) and the first value."""

    rule: ColumnRule
    mask: np.ndarray
    first: int
    value: float

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    def message(self) -> str:
        """One line: the column, the rule, the first bad value and the fix."""
        rule = self.rule
        if rule.binary and np.isfinite(self.value):
            need = "must be 0 or 1"
        elif np.isnan(self.value):
            need = "must not be null or NaN"
        else:
            need = "must be finite"
        more = f" ({self.count} such rows in this chunk)" if self.count > 1 else ""
        hint = f"; {rule.hint}" if rule.hint else ""
        return f"{rule.what} (column '{rule.column}') {need}, got {_show(self.value)}{more}{hint}"


def _show(value: float) -> str:
    if np.isnan(value):
        return "null/NaN"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _bad_mask(values: pa.Array | pa.ChunkedArray, rule: ColumnRule) -> np.ndarray | None:
    """Bool mask of the rows breaking ``rule``, or None when all pass (the common, cheap case).

    Non-numeric columns are left to the consumer's own type check (a string column of numbers
    may be meant to be parsed there)."""
    t = values.type
    if not _is_numeric(t):
        return None
    floating = pa.types.is_floating(t)
    if not rule.binary and not floating:
        if rule.allow_missing or values.null_count == 0:
            return None  # integers are finite: only a null can break the rule
        return ~pc.is_valid(values).to_numpy(zero_copy_only=False)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if rule.binary and pa.types.is_boolean(t) and values.null_count == 0:
        return None
    if rule.binary and pa.types.is_integer(t) and values.null_count == 0:
        x = values.to_numpy(zero_copy_only=False)  # no copy; one reduction, no mask, when all pass
        as_unsigned = x.view(x.dtype.str.replace("i", "u"))  # negatives become huge
        if x.size == 0 or as_unsigned.max() <= 1:
            return None
    x = (values.to_numpy(zero_copy_only=False) if floating
         else pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False))  # nulls -> NaN
    if not rule.binary and not rule.allow_inf:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.add.reduce(x)):  # no inf, no NaN: one pass, no mask (the common case)
                return None
    if rule.binary:
        bad = (x != 0) & (x != 1)
        if rule.allow_missing:
            bad &= ~np.isnan(x)
    elif rule.allow_inf:
        bad = np.isnan(x) if not rule.allow_missing else None
    elif rule.allow_missing:
        bad = np.isinf(x)
    else:
        bad = ~np.isfinite(x)
    if bad is None or not bad.any():
        return None
    return bad


def find_violations(batch: pa.RecordBatch, rules: Sequence[ColumnRule]) -> list[Violation]:
    """Every rule broken somewhere in ``batch`` (columns the batch lacks are skipped)."""
    out: list[Violation] = []
    names = set(batch.schema.names)
    for rule in rules:
        if rule.column not in names:
            continue
        values = batch.column(rule.column)
        mask = _bad_mask(values, rule)
        if mask is None:
            continue
        first = int(np.argmax(mask))
        value = values[first].as_py()
        out.append(Violation(rule, mask, first, float("nan") if value is None else float(value)))
    return out


def numeric_columns(rules: Sequence[ColumnRule]) -> list[str]:
    """The columns the rules say hold numbers (read as numbers from text formats)."""
    return list(dict.fromkeys(r.column for r in rules))
