"""dataio.Source: formats, path expansion, projection, schema, compression."""
from __future__ import annotations

import gzip
import json
import uuid

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dataio.files import detect_format
from dataio.source import Source
from lingjie.errors import ConfigError, DataError


@pytest.fixture
def mem():
    """A fresh memory:// directory, removed afterwards."""
    root = f"/t-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def table(n: int, start: int = 0) -> pa.Table:
    ids = np.arange(start, start + n)
    return pa.table({"id": ids, "x": ids * 0.5, "name": [f"n{i}" for i in ids]})


def ids_of(batches) -> np.ndarray:
    return np.concatenate([b.column("id").to_numpy() for b in batches]) if batches else np.array([])


def test_parquet_csv_jsonl_read_the_same_rows(tmp_path):
    t = table(250)
    pq.write_table(t, tmp_path / "a.parquet", row_group_size=64)
    pacsv.write_csv(t, tmp_path / "a.csv")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in t.to_pylist()))
    for name in ["a.parquet", "a.csv", "a.jsonl"]:
        src = Source(str(tmp_path / name), read_rows=30)
        got = pa.Table.from_batches(list(src.iter_batches(100)))
        assert got.column_names == ["id", "x", "name"], name
        assert got.equals(t), name
        assert src.stats["rows_read"] == 250


def test_explicit_format_and_compressed_files(tmp_path):
    t = table(40)
    with gzip.open(tmp_path / "a.csv.gz", "wb") as fh:
        pacsv.write_csv(t, fh)
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in table(10, 40).to_pylist()))
    (tmp_path / "c.data").write_bytes((tmp_path / "a.csv.gz").read_bytes())
    assert detect_format("x.csv.gz") == "csv" and detect_format("x.JSON") == "jsonl"
    assert detect_format("x.pq") == "parquet" and detect_format("x.bin") is None
    src = Source([str(tmp_path / "a.csv.gz"), str(tmp_path / "b.jsonl.gz")])
    assert np.array_equal(ids_of(list(src.iter_batches(16))), np.arange(50))
    with pytest.raises(DataError, match="cannot tell the format"):
        Source(str(tmp_path / "c.data"))


def test_tsv_and_headerless_csv(tmp_path):
    (tmp_path / "a.tsv").write_text("id\tname\n1\tx\n2\ty\n")
    got = pa.Table.from_batches(list(Source(str(tmp_path / "a.tsv")).iter_batches(10)))
    assert got.to_pydict() == {"id": [1, 2], "name": ["x", "y"]}
    (tmp_path / "b.txt").write_text("1;x\n2;y\n")
    src = Source(str(tmp_path / "b.txt"), csv_header=False, csv_column_names=["id", "name"],
                 csv_delimiter=";")
    assert pa.Table.from_batches(list(src.iter_batches(10))).to_pydict() == got.to_pydict()
    # a header line that is replaced by csv_column_names
    (tmp_path / "c.csv").write_text("a,b\n1,x\n2,y\n")
    src = Source(str(tmp_path / "c.csv"), csv_column_names=["id", "name"])
    assert pa.Table.from_batches(list(src.iter_batches(10))).to_pydict() == got.to_pydict()


def test_directory_glob_list_and_memory_urls(mem):
    fs, root = mem
    for i in range(3):
        with fs.open(f"{root}/d/part-{i}.parquet", "wb") as fh:
            pq.write_table(table(10, 10 * i), fh)
    fs.pipe(f"{root}/d/_SUCCESS", b"")
    fs.pipe(f"{root}/d/README.md", b"not data")
    fs.pipe(f"{root}/d/.hidden/x.parquet", b"junk")
    src = Source(f"memory://{root}/d")
    assert src.files == [f"memory://{root}/d/part-{i}.parquet" for i in range(3)]
    assert np.array_equal(ids_of(list(src.iter_batches(7))), np.arange(30))
    assert len(Source(f"memory://{root}/d/part-[02].parquet").files) == 2
    assert Source(f"memory://{root}/[d]").files == src.files  # a glob matching a directory
    listed = Source([f"memory://{root}/d/part-2.parquet", f"memory://{root}/d/part-0.parquet"])
    assert listed.files == sorted(listed.files)  # sorted, so every shard sees one order


def test_missing_paths_name_the_path(tmp_path, mem):
    with pytest.raises(DataError, match="no such file") as err:
        Source(str(tmp_path / "nope.parquet"))
    assert "nope.parquet" in str(err.value)
    with pytest.raises(DataError, match="no files match"):
        Source(str(tmp_path / "*.csv"))
    fs, root = mem
    fs.mkdir(f"{root}/empty")
    fs.pipe(f"{root}/empty/notes.md", b"x")
    with pytest.raises(DataError, match="no data files"):
        Source(f"memory://{root}/empty")


def test_projection_and_schema(tmp_path):
    pq.write_table(table(20), tmp_path / "a.parquet")
    pacsv.write_csv(table(20, 20), tmp_path / "b.csv")
    src = Source(str(tmp_path), columns=["name", "id"])
    assert src.schema().names == ["name", "id"]
    batches = list(src.iter_batches(8))
    assert all(b.schema.names == ["name", "id"] for b in batches)
    assert np.array_equal(ids_of(batches), np.arange(40))
    full = Source(str(tmp_path))
    assert full.schema() == pa.schema([("id", pa.int64()), ("x", pa.float64()), ("name", pa.string())])


def test_later_files_are_cast_to_the_first_files_types(tmp_path):
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64()), "v": [1.5, 2.5]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"v": pa.array([3, 4], pa.int32()), "id": pa.array([3, 4], pa.int32()),
                             "extra": ["a", "b"]}), tmp_path / "b.parquet")
    got = pa.Table.from_batches(list(Source(str(tmp_path)).iter_batches(10)))
    assert got.schema == pa.schema([("id", pa.int64()), ("v", pa.float64())])
    assert got.column("v").to_pylist() == [1.5, 2.5, 3.0, 4.0]
    pq.write_table(pa.table({"id": ["x"], "v": [1.0]}), tmp_path / "c.parquet")
    with pytest.raises(DataError, match="c.parquet"):
        list(Source(str(tmp_path)).iter_batches(10))


def test_list_columns_stream_from_parquet(tmp_path):
    t = pa.table({"id": [1, 2, 3], "hist": pa.array([[1, 2], [], [3]], pa.list_(pa.int64()))})
    pq.write_table(t, tmp_path / "a.parquet")
    got = pa.Table.from_batches(list(Source(str(tmp_path / "a.parquet")).iter_batches(2)))
    assert got.column("hist").to_pylist() == [[1, 2], [], [3]]


def test_bad_arguments_are_config_errors(tmp_path):
    pq.write_table(table(5), tmp_path / "a.parquet")
    path = str(tmp_path / "a.parquet")
    for kwargs in [{"format": "xls"}, {"on_error": "ignore"}, {"read_rows": 0},
                   {"columns": "id"}, {"required_columns": "id"}, {"csv_delimiter": ",,"}]:
        with pytest.raises(ConfigError):
            Source(path, **kwargs)
    src = Source(path)
    for kwargs in [{"batch_size": 0}, {"batch_size": 2, "rank": 2, "world_size": 2},
                   {"batch_size": 2, "worker": -1}, {"batch_size": 2, "skip_batches": -1},
                   {"batch_size": 2, "limit_rows": -5}, {"batch_size": 2, "shuffle_buffer_rows": 0}]:
        with pytest.raises(ConfigError):
            src.iter_batches(**kwargs)  # raised on the call, before the first next()
