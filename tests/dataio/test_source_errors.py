"""dataio.Source: bad rows (raise / skip), empty and corrupt files, missing-column messages."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataio.source import Source
from lingjie.errors import DataError


def read_all(src: Source, batch_size: int = 4, **kw) -> pa.Table:
    batches = list(src.iter_batches(batch_size, **kw))
    return pa.Table.from_batches(batches) if batches else pa.table({})


CSV_BAD = "id,name\n0,a\n1,b\n2\n3,d\n4,e,extra\n5,f\n"  # data rows 2 and 4 are malformed


def test_malformed_csv_line_raises_with_file_and_row(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(CSV_BAD)
    with pytest.raises(DataError) as err:
        read_all(Source(str(path)))
    assert err.value.file == str(path) and err.value.row == 2
    assert "a.csv at row 2" in str(err.value) and "expected 2 fields, got 1" in str(err.value)


def test_malformed_csv_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(CSV_BAD)
    src = Source(str(path), on_error="skip")
    assert read_all(src)["id"].to_pylist() == [0, 1, 3, 5]
    assert src.stats["bad_rows"] == 2 and src.stats["bad_rows_by_file"] == {str(path): 2}
    assert src.stats["rows_read"] == 4


def test_bad_rows_are_counted_once_over_shards(tmp_path):
    lines = ["id,v"] + [f"{i},{i}" if i % 10 else f"{i}" for i in range(200)]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    src = Source(str(tmp_path / "a.csv"), on_error="skip", read_rows=16)
    bad, rows = 0, 0
    for rank in range(3):
        rows += read_all(src, rank=rank, world_size=3).num_rows
        bad += src.stats["bad_rows"]
    assert bad == 20 and rows == 180


def test_unparsable_json_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": 0, "s": "a"}\n\n{"id": 1, "s": "b"}\n{"id": 2,, }\n'
                    'not json\n{"id": "three", "s": "c"}\n{"id": 4, "s": "e"}\n')
    with pytest.raises(DataError) as err:
        read_all(Source(str(path)))
    assert err.value.file == str(path) and err.value.row == 2  # blank lines are not rows
    src = Source(str(path), on_error="skip")
    assert read_all(src)["id"].to_pylist() == [0, 1, 4]
    assert src.stats["bad_rows"] == 3  # a syntax error, a non-object, a type change


def test_json_bad_lines_in_many_blocks(tmp_path):
    good = [f'{{"id": {i}}}' for i in range(3000)]
    for i in range(0, 3000, 250):
        good[i] = "{oops"
    (tmp_path / "a.jsonl").write_text("\n".join(good) + "\n")
    src = Source(str(tmp_path / "a.jsonl"), on_error="skip", read_block_bytes=700)
    ids = read_all(src, 100)["id"].to_numpy()
    assert len(ids) == 3000 - 12 and 250 not in ids and 251 in ids
    assert src.stats["bad_rows"] == 12


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_null_in_required_column(tmp_path, fmt):
    t = pa.table({"id": [0, 1, 2, 3], "label": [1, None, 0, None], "opt": [None, "x", "y", "z"]})
    path = tmp_path / f"a.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path)
    else:
        path.write_text("id,label,opt\n0,1,\n1,,x\n2,0,y\n3,,z\n")
    with pytest.raises(DataError, match="null in required column 'label'") as err:
        read_all(Source(str(path), required_columns=["label"]))
    assert err.value.row == 1 and err.value.file == str(path)
    src = Source(str(path), required_columns=["label"], columns=["id"], on_error="skip")
    got = read_all(src)
    assert got.column_names == ["id"] and got["id"].to_pylist() == [0, 2]
    assert src.stats["bad_rows"] == 2


@pytest.mark.parametrize("content", [b"", b"id,name\n", b"id,name"])
def test_empty_csv_file(tmp_path, content):
    (tmp_path / "a.csv").write_text("id,name\n1,x\n")
    (tmp_path / "b.csv").write_bytes(content)
    with pytest.raises(DataError, match="empty") as err:
        read_all(Source(str(tmp_path)))
    assert err.value.file == str(tmp_path / "b.csv")
    src = Source(str(tmp_path), on_error="skip")
    assert read_all(src)["id"].to_pylist() == [1]
    assert src.stats["empty_files"] == 1


def test_empty_parquet_and_jsonl_files(tmp_path):
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"")
    (tmp_path / "c.jsonl").write_text("\n \n")
    pq.write_table(pa.table({"id": [7]}), tmp_path / "d.parquet")
    with pytest.raises(DataError, match="a.parquet.*empty"):
        read_all(Source(str(tmp_path)))
    src = Source(str(tmp_path), on_error="skip")
    assert src.schema().names == ["id"]  # from the first non-empty file
    assert read_all(src)["id"].to_pylist() == [7]
    assert src.stats["empty_files"] == 3


def test_all_files_empty(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        Source(str(tmp_path / "a.csv"), on_error="skip").schema()


def test_corrupt_parquet_names_the_file(tmp_path):
    pq.write_table(pa.table({"id": np.arange(1000)}), tmp_path / "a.parquet")
    data = (tmp_path / "a.parquet").read_bytes()
    (tmp_path / "b.parquet").write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(DataError, match="b.parquet") as err:
        read_all(Source(str(tmp_path)))
    assert err.value.file == str(tmp_path / "b.parquet")
    (tmp_path / "b.parquet").unlink()
    (tmp_path / "c.parquet").write_bytes(data[:4] + b"\x00" * 200 + data[204:])  # bad pages
    with pytest.raises(DataError, match="c.parquet"):
        read_all(Source(str(tmp_path)), 100)


def test_check_columns_names_missing_file_and_suggestions(tmp_path):
    pq.write_table(pa.table({"user_id": [1], "item_id": [2], "rating": [3.0]}), tmp_path / "a.parquet")
    src = Source(str(tmp_path / "a.parquet"))
    src.check_columns(["user_id", "rating"])
    with pytest.raises(DataError) as err:
        src.check_columns(["user_id", "userid", "ratings", "zzz"])
    text = str(err.value)
    assert err.value.file == str(tmp_path / "a.parquet")
    assert "missing columns 'userid' (did you mean: user_id?)" in text
    assert "'ratings' (did you mean: rating?)" in text and "'zzz'" in text
    assert "user_id" in text.split("the file has:")[1]


def test_projection_of_a_missing_column_is_a_clear_error(tmp_path):
    (tmp_path / "a.csv").write_text("user_id,rating\n1,2\n")
    with pytest.raises(DataError, match="did you mean: user_id"):
        Source(str(tmp_path / "a.csv"), columns=["user"]).schema()
    # a later file lacking a column the first one has
    (tmp_path / "b.csv").write_text("user_id\n3\n")
    with pytest.raises(DataError, match="missing column 'rating'") as err:
        read_all(Source(str(tmp_path)))
    assert err.value.file == str(tmp_path / "b.csv")
