"""Bad data must not train silently: the value rules, through the real rec source and pipeline.

Each test writes a small Parquet/CSV file, builds the source exactly as fit/train/eval/predict
do (``easyrec.data.make_source`` on the composed movielens_deepfm spec) and reads it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from dataio.checks import ColumnRule, find_violations
from dataio.readers import ReadOptions, reader_for
from dataio.files import expand_paths
from easyrec.data import fit_pipeline, make_pipeline, make_source
from lingjie.errors import DataError
from tests.conftest import compose


def _spec(path: Path, *overrides: str) -> Any:
    from trainer.schema.validate import validate

    return validate(compose(["+experiment=movielens_deepfm", "data.dataset=null", f"data.train_path={path}",
                             "data.eval_path=null", *overrides]))


def _read(path: Path, *overrides: str, with_labels: bool = True) -> tuple[int, Any]:
    """Rows the rec source yields for ``path`` (and the source, for its stats)."""
    spec = _spec(path, *overrides)
    src = make_source(spec, str(path), make_pipeline(spec), with_labels=with_labels)
    return sum(b.num_rows for b in src.iter_batches(64)), src


def _parquet(tmp_path: Path, table: pa.Table, name: str = "train.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def _set(table: pa.Table, column: str, rows: dict[int, Any], type_: pa.DataType | None = None) -> pa.Table:
    values = table.column(column).to_pylist()
    for i, v in rows.items():
        values[i] = v
    i = table.schema.get_field_index(column)
    return table.set_column(i, column, pa.array(values, type=type_ or table.schema.field(column).type))


def test_binary_label_outside_0_1_names_label_file_row_value_and_threshold(tmp_path: Path,
                                                                            movielens_table: Callable) -> None:
    table = _set(movielens_table(300), "rating", {37: 7, 90: -3})
    path = _parquet(tmp_path, table)
    with pytest.raises(DataError) as err:
        _read(path, "data.labels.like.threshold=null")
    msg = str(err.value)
    assert err.value.file == str(path) and err.value.row == 0  # ratings 1-5 already break the rule
    assert "label 'like'" in msg and "must be 0 or 1" in msg and "data.labels.like.threshold=<x>" in msg
    zero_one = _set(table.set_column(2, "rating", pa.array(np.zeros(300, dtype=np.int64))), "rating", {37: 7})
    with pytest.raises(DataError) as err:
        _read(_parquet(tmp_path, zero_one), "data.labels.like.threshold=null")
    assert err.value.row == 37 and "got 7" in str(err.value)


def test_threshold_binarises_as_before(tmp_path: Path, movielens_table: Callable) -> None:
    path = _parquet(tmp_path, _set(movielens_table(300), "rating", {37: 7, 90: -3}))
    rows, src = _read(path)  # threshold 4: any number is a label
    assert rows == 300 and src.stats["bad_rows"] == 0


def test_skip_drops_and_counts_bad_labels(tmp_path: Path, movielens_table: Callable) -> None:
    table = movielens_table(300)
    table = table.set_column(2, "rating", pa.array(np.arange(300) % 2))
    path = _parquet(tmp_path, _set(table, "rating", {5: 7, 6: -3, 200: 2}))
    rows, src = _read(path, "data.labels.like.threshold=null", "data.on_error=skip")
    assert rows == 297 and src.stats["bad_rows"] == 3
    assert src.stats["bad_rows_by_file"] == {str(path): 3}


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_raw_feature_names_feature_file_row(tmp_path: Path, movielens_table: Callable, value: float) -> None:
    table = movielens_table(200)
    table = table.set_column(table.schema.get_field_index("age"), "age",
                             pa.array(table.column("age").to_numpy().astype(np.float64)))
    path = _parquet(tmp_path, _set(table, "age", {123: value}))
    with pytest.raises(DataError) as err:
        _read(path, "features.age.boundaries=null", "+features.age.normalizer=zscore")
    assert err.value.file == str(path) and err.value.row == 123
    assert "raw feature 'age'" in str(err.value) and "column 'age'" in str(err.value) and "inf" in str(err.value)
    with pytest.raises(DataError):  # predict (no labels) reads through the same rule
        _read(path, with_labels=False)


def test_nan_a_raw_feature_fills_is_fine_but_nan_label_is_not(tmp_path: Path, movielens_table: Callable) -> None:
    table = movielens_table(200)
    table = table.set_column(table.schema.get_field_index("age"), "age",
                             pa.array(table.column("age").to_numpy().astype(np.float64)))
    table = _set(table, "age", {3: float("nan"), 4: None})
    rows, _ = _read(_parquet(tmp_path, table))
    assert rows == 200
    table = table.set_column(2, "rating", pa.array(table.column("rating").to_numpy().astype(np.float64)))
    path = _parquet(tmp_path, _set(table, "rating", {150: float("nan")}), "nan_label.parquet")
    with pytest.raises(DataError) as err:
        _read(path)
    assert err.value.row == 150 and "label 'like'" in str(err.value) and "NaN" in str(err.value)


def test_fit_sees_the_same_rule(tmp_path: Path, movielens_table: Callable) -> None:
    table = movielens_table(200)
    path = _parquet(tmp_path, _set(table, "release_year", {0: None}))  # null raw feature: filled
    spec = _spec(path)
    fit_pipeline(spec, make_pipeline(spec))
    bad = _parquet(tmp_path, _set(table.set_column(
        table.schema.get_field_index("release_year"), "release_year",
        pa.array(table.column("release_year").to_numpy().astype(np.float64))), "release_year", {9: np.inf}),
        "bad.parquet")
    spec = _spec(bad)
    with pytest.raises(DataError) as err:
        fit_pipeline(spec, make_pipeline(spec))
    assert err.value.row == 9 and err.value.file == str(bad)


def _csv(tmp_path: Path, table: pa.Table, edits: dict[int, str]) -> Path:
    path = tmp_path / "train.csv"
    pcsv.write_csv(table.drop_columns(["hist_item_id"]), path)
    lines = path.read_text().splitlines()
    for row, text in edits.items():  # row: 0-based data row
        cells = lines[row + 1].split(",")
        cells[5] = text  # the age column
        lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("row", [3, 1700])  # in the first block (type inference) and a later one
def test_text_in_numeric_csv_column_names_column_file_row_value(tmp_path: Path, movielens_table: Callable,
                                                                row: int) -> None:
    table = movielens_table(2000)
    assert table.schema.names[5] == "age"
    path = _csv(tmp_path, table, {row: "abc"})
    with pytest.raises(DataError) as err:
        _read(path, "data.read_rows=512")
    assert err.value.file == str(path) and err.value.row == row
    assert "column 'age'" in str(err.value) and "'abc'" in str(err.value)


def test_text_in_numeric_csv_column_skipped_and_counted(tmp_path: Path, movielens_table: Callable) -> None:
    path = _csv(tmp_path, movielens_table(2000), {3: "abc", 1000: "n/a", 1500: "?", 1999: "x1"})
    rows, src = _read(path, "data.on_error=skip")
    assert rows == 1997 and src.stats["bad_rows"] == 3  # "n/a" is a null (fill_null fills it)


def test_csv_bad_rows_reported_at_their_file_rows_across_ragged_lines(tmp_path: Path) -> None:
    """The second (text) pass maps parsed rows past skipped ragged lines, in file order."""
    lines = ["a,b"] + [f"{i},{i}" for i in range(4000)]
    lines[1 + 10] = "1,2,3"  # ragged: data row 10
    lines[1 + 2500] = "9,oops"  # text in b: data row 2500 (after the first block)
    lines[1 + 2501] = "7"  # ragged: data row 2501
    lines[1 + 3999] = "bad,1"  # text in a: data row 3999
    path = tmp_path / "f.csv"
    path.write_text("\n".join(lines) + "\n")
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    seen: list[tuple[int, int]] = []
    for block in (1 << 20, 4096):
        seen.clear()
        file = expand_paths(str(path), "csv", None, None)[0]
        reader = reader_for("csv").read(file, ReadOptions(schema=schema, block_bytes=block),
                                        lambda s, e: True, lambda row, good, why: seen.append((row, good)))
        got = []
        try:
            while True:
                offset, batch = next(reader)
                assert offset == len(got)
                got += batch.column("a").to_pylist()
        except StopIteration as stop:
            total = stop.value
        assert seen == [(10, 10), (2500, 2499), (2501, 2499), (3999, 3996)], block
        assert total == len(got) == 3996 and 9 not in got[2490:2510] and got[-1] == 3998


def test_rules_are_vectorised_and_exact() -> None:
    batch = pa.record_batch({"y": pa.array([0, 1, 1, 0]), "x": pa.array([1.0, np.nan, 2.0, 3.0])})
    assert find_violations(batch, [ColumnRule("y", "label", binary=True),
                                   ColumnRule("x", "feature", allow_missing=True)]) == []
    [v] = find_violations(batch, [ColumnRule("x", "label 'x'")])
    assert v.first == 1 and v.count == 1 and "must not be null or NaN" in v.message()
