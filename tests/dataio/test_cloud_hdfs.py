"""hdfs:// (pyhdfs) and webhdfs:// (fsspec) against the WebHDFS NameNode + DataNode emulator."""
from __future__ import annotations

import io
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataio.remote_atomic import atomic_upload, atomic_write_url, open_url
from dataio.source import Source
from tests.emulators.fixtures import hdfs_server  # noqa: F401  (fixture)
from lingjie.errors import DataError

SCHEMES = ["hdfs", "webhdfs"]


def parquet_bytes(start: int, n: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(start, start + n)),
                             "v": [float(i) for i in range(start, start + n)]}), buf,
                   row_group_size=50)
    return buf.getvalue()


@pytest.fixture(scope="module")
def data(hdfs_server):
    for k in range(4):
        hdfs_server.put(f"/warehouse/ctr/day={k}/part-0.parquet", parquet_bytes(k * 200, 200))
    hdfs_server.put("/warehouse/ctr/_SUCCESS", b"")
    hdfs_server.put("/warehouse/csv/a.csv", b"id,v\n1,1.5\n2,2.5\n3,3.5\n")
    return hdfs_server


def ids(src, **kw) -> list[int]:
    return [i for b in src.iter_batches(64, **kw) for i in b.column("id").to_pylist()]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_partitioned_directory_glob_reads_every_row(data, scheme):
    data.calls.clear()
    src = Source(data.url("/warehouse/ctr/day=*/*.parquet", scheme))
    assert src.files == [data.url(f"/warehouse/ctr/day={k}/part-0.parquet", scheme) for k in range(4)]
    assert ids(src) == list(range(800))
    assert src.count_rows() == 800
    # data went through the DataNode by redirect, as byte ranges
    assert data.calls["OPEN"] > 0 and data.calls["datanode:OPEN"] == data.calls["OPEN"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_csv_and_directory(data, scheme):
    assert ids(Source(data.url("/warehouse/csv/a.csv", scheme))) == [1, 2, 3]
    assert len(Source(data.url("/warehouse/ctr", scheme)).files) == 4  # _SUCCESS ignored


@pytest.mark.parametrize("scheme", SCHEMES)
def test_shards_are_disjoint_and_cover(data, scheme):
    src = Source(data.url("/warehouse/ctr/", scheme), read_rows=64)
    seen = []
    for rank in range(2):
        for worker in range(2):
            seen += ids(src, rank=rank, world_size=2, worker=worker, num_workers=2)
    assert sorted(seen) == list(range(800))


def test_hadoop_user_name_is_sent(data, monkeypatch):
    monkeypatch.setenv("HADOOP_USER_NAME", "etl-bot")
    data.users.clear()
    ids(Source(data.url("/warehouse/csv/a.csv", "hdfs")))
    ids(Source(data.url("/warehouse/csv/a.csv", "webhdfs")))
    assert set(data.users) == {"etl-bot"}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_missing_path_and_unreachable_namenode(data, scheme):
    with pytest.raises(DataError, match="no files match"):
        Source(data.url("/nowhere/*.parquet", scheme))
    with pytest.raises(DataError) as err:
        Source(f"{scheme}://127.0.0.1:9/warehouse/*.csv",
               retry={"tries": 2, "first_delay_s": 0.01, "timeout_s": 2})
    assert f"{scheme}://127.0.0.1:9" in str(err.value) and "after 2 tries" in str(err.value)


def test_transient_namenode_errors_are_retried(data):
    data.fail_next(1)
    assert ids(Source(data.url("/warehouse/csv/a.csv", "hdfs"),
                      retry={"tries": 3, "first_delay_s": 0.01})) == [1, 2, 3]


def test_delegation_token_is_never_shown(data, caplog):
    caplog.set_level(logging.DEBUG)
    token = "HDFS-DELEGATION-TOKEN-s3cr3t-value"
    data.delegation_token = token
    try:
        src = Source(data.url("/warehouse/csv/a.csv", "webhdfs"), storage_options={"token": token})
        assert ids(src) == [1, 2, 3]
        with pytest.raises(DataError) as err:
            Source("webhdfs://127.0.0.1:9/x/*.csv", storage_options={"token": token},
                   retry={"tries": 1})
        with pytest.raises(DataError) as denied:
            Source(data.url("/warehouse/csv/a.csv", "webhdfs"),
                   storage_options={"token": token + "-wrong"})
    finally:
        data.delegation_token = None
    shown = "\n".join([repr(src), str(src.files), str(err.value), str(denied.value), caplog.text])
    assert token not in shown
    assert "127.0.0.1:9" in str(err.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_atomic_write_renames_over_the_target(data, scheme):
    url = data.url(f"/ckpt/{scheme}/best.pt", scheme)
    atomic_write_url(url, b"first")
    data.calls.clear()
    atomic_write_url(url, b"second" * 1000)
    assert data.get(f"/ckpt/{scheme}/best.pt") == b"second" * 1000
    assert data.calls["RENAME"] == 1 and data.calls["CREATE"] == 1
    assert os.listdir(data.local(f"/ckpt/{scheme}")) == ["best.pt"]  # no temp file left
    with open_url(url) as fh:
        assert fh.read(6) == b"second"


def test_atomic_upload_of_a_large_file(data, tmp_path):
    blob = os.urandom(12 << 20)  # more than one 5 MiB write block: CREATE + APPEND
    (tmp_path / "model.pt").write_bytes(blob)
    data.calls.clear()
    atomic_upload(tmp_path / "model.pt", data.url("/ckpt/big/model.pt", "hdfs"))
    assert data.get("/ckpt/big/model.pt") == blob
    assert data.calls["APPEND"] >= 1
