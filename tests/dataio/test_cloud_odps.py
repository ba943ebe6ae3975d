"""odps:// tables: the TableReader contract (local Parquet implementation, and the real
MaxCompute service when credentials are in the environment) and OdpsSource on top of it."""
from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataio.credentials import odps_available
from dataio.odps import (LocalTableReader, OdpsSource, OdpsTableUrl, PyOdpsTableReader, TableReader,
                         partition_matches)
from lingjie.errors import ConfigError, DataError

DAYS = ["20240101", "20240102", "20240201"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """root/proj/clicks/pt=DAY/region=R/*.parquet and an unpartitioned root/proj/users."""
    root = tmp_path_factory.mktemp("odps")
    next_id = 0
    for day in DAYS:
        for region in ("cn", "sg"):
            d = root / "proj" / "clicks" / f"pt={day}" / f"region={region}"
            d.mkdir(parents=True)
            for k in range(2):
                n = 70 + 10 * k
                ids = list(range(next_id, next_id + n))
                next_id += n
                labels = [None if i % 37 == 0 else i % 2 for i in ids]
                pq.write_table(pa.table({"id": ids, "label": pa.array(labels, pa.int8()),
                                         "f": [i / 10 for i in ids]}), d / f"part-{k}.parquet",
                               row_group_size=25)
    users = root / "proj" / "users"
    users.mkdir(parents=True)
    pq.write_table(pa.table({"uid": list(range(50)), "age": list(range(50))}), users / "0.parquet")
    return root, next_id


def check_contract(reader: TableReader, partition: str, columns: list[str] | None = None,
                   rows: int | None = None) -> None:
    """What OdpsSource relies on; run against every TableReader implementation. ``columns`` and
    ``rows``: the table's column names and the partition's row count where the test knows them
    (the real service's count is checked against the rows read back below)."""
    parts = reader.partitions()
    assert parts == sorted(parts) and partition in parts
    schema = reader.schema()
    assert isinstance(schema, pa.Schema) and len(schema) > 0
    if columns is not None:
        assert schema.names == columns
    n = reader.count(partition)
    if rows is not None:
        assert n == rows
    whole = pa.Table.from_batches(list(reader.read(partition, 0, n, None, 1000)), schema=schema) \
        if n else schema.empty_table()
    assert whole.num_rows == n
    col = schema.names[0]
    for start, count in ((0, min(n, 7)), (n // 3, n // 3), (max(n - 5, 0), 5)):
        count = min(count, n - start)
        got = pa.Table.from_batches(list(reader.read(partition, start, count, [col], 4)),
                                    schema=pa.schema([schema.field(col)])) if count else None
        if count:
            assert got.column_names == [col]
            assert got.column(col).to_pylist() == whole.column(col).slice(start, count).to_pylist()
            assert all(b.num_rows <= 4 for b in reader.read(partition, start, count, [col], 4))


def test_local_reader_meets_the_contract(warehouse):
    root, _ = warehouse
    reader = LocalTableReader(root, "proj", "clicks")
    assert reader.partitions()[0] == "pt=20240101/region=cn"
    assert "pt" not in reader.schema().names
    check_contract(reader, "pt=20240102/region=sg", ["id", "label", "f"], rows=70 + 80)
    plain = LocalTableReader(root, "proj", "users")
    assert plain.partitions() == [""]
    check_contract(plain, "", ["uid", "age"], rows=50)


@pytest.mark.skipif(not odps_available() or not os.environ.get("LINGJIE_ODPS_TEST_TABLE"),
                    reason="real MaxCompute test: set ODPS_ENDPOINT, ODPS_ACCESS_ID, "
                           "ODPS_ACCESS_KEY and LINGJIE_ODPS_TEST_TABLE=project/table[/pt=...] "
                           "(an existing, readable table)")
def test_pyodps_reader_meets_the_contract_on_the_real_service():
    spec = os.environ["LINGJIE_ODPS_TEST_TABLE"]
    url = OdpsTableUrl.parse(f"odps://{spec.split('/')[0]}/tables/{'/'.join(spec.split('/')[1:])}")
    reader = PyOdpsTableReader(url.project, url.table)
    parts = [p for p in reader.partitions() if partition_matches(p, url.partition)]
    check_contract(reader, parts[0])
    src = OdpsSource(url.shown(), reader=reader, partition=parts[0], read_rows=100)
    total = src.count_rows()
    got = sum(b.num_rows for r in range(2) for b in src.iter_batches(64, rank=r, world_size=2,
                                                                       limit_rows=500))
    assert got == min(total // 2, 500) + min(total - total // 2, 500)


def test_url_and_partition_filters(warehouse):
    root, total = warehouse
    opts = {"local_root": str(root)}
    assert OdpsTableUrl.parse("odps://proj/tables/clicks/pt=2024*/region=cn").partition == \
        (("pt", "2024*"), ("region", "cn"))
    src = OdpsSource("odps://proj/tables/clicks/pt=202401*", options=opts)
    assert src.partitions == [f"pt={d}/region={r}" for d in DAYS[:2] for r in ("cn", "sg")]
    assert src.files[0] == "odps://proj/tables/clicks/pt=20240101/region=cn"
    src = OdpsSource("odps://proj/tables/clicks", partition=["region=sg", "pt=20240101,region=cn"],
                     options=opts)
    assert len(src.partitions) == 4
    assert OdpsSource("odps://proj/tables/clicks", options=opts).count_rows() == total
    with pytest.raises(DataError, match="no partition matches"):
        OdpsSource("odps://proj/tables/clicks/pt=2023*", options=opts)
    with pytest.raises(ConfigError, match="odps://project/tables/table"):
        OdpsSource("odps://proj/clicks", options=opts)
    with pytest.raises(DataError, match="does not exist"):
        OdpsSource("odps://proj/tables/nope", options=opts)


def test_columns_are_selected_and_checked(warehouse):
    root, _ = warehouse
    src = OdpsSource("odps://proj/tables/clicks/pt=20240101/region=cn", columns=["f", "id"],
                     options={"local_root": str(root)})
    batch = next(src.iter_batches(10))
    assert batch.schema.names == ["f", "id"]
    with pytest.raises(DataError, match="did you mean: label"):
        OdpsSource("odps://proj/tables/clicks", columns=["lable"],
                   options={"local_root": str(root)}).schema()


def test_ranks_and_workers_read_disjoint_contiguous_ranges(warehouse):
    root, total = warehouse
    src = OdpsSource("odps://proj/tables/clicks", columns=["id"], read_rows=33,
                     options={"local_root": str(root)})
    seen = []
    for rank in range(3):
        for worker in range(2):
            got = [i for b in src.iter_batches(50, rank=rank, world_size=3, worker=worker,
                                               num_workers=2) for i in b.column("id").to_pylist()]
            assert got == sorted(got)  # a contiguous slice, in table order
            seen += got
    assert sorted(seen) == list(range(total)) and len(seen) == total


def test_resume_with_skip_batches_and_shuffle_is_exact(warehouse):
    root, _ = warehouse
    src = OdpsSource("odps://proj/tables/clicks/pt=202401*", columns=["id"], read_rows=40,
                     options={"local_root": str(root)})

    def run(**kw):
        return [b.column("id").to_pylist() for b in
                src.iter_batches(32, shuffle=True, seed=3, epoch=1, shuffle_buffer_rows=100,
                                 rank=1, world_size=2, **kw)]

    full = run()
    assert run(skip_batches=4) == full[4:]
    assert run() == full
    other_epoch = [b.column("id").to_pylist() for b in
                   src.iter_batches(32, shuffle=True, seed=3, epoch=2, rank=1, world_size=2)]
    assert other_epoch != full and sorted(sum(other_epoch, [])) == sorted(sum(full, []))


def test_null_labels_are_bad_rows(warehouse):
    root, _ = warehouse
    url = "odps://proj/tables/clicks/pt=20240101/region=cn"
    with pytest.raises(DataError) as err:
        list(OdpsSource(url, required_columns=["label"], options={"local_root": str(root)})
             .iter_batches(64))
    assert err.value.file == "odps://proj/tables/clicks/pt=20240101/region=cn" and err.value.row == 0
    src = OdpsSource(url, required_columns=["label"], on_error="skip",
                     options={"local_root": str(root)})
    rows = sum(b.num_rows for b in src.iter_batches(64))
    assert src.stats["bad_rows"] == 5 and rows == 150 - 5  # ids 0, 37, 74, 111, 148


def test_real_service_without_credentials_names_the_variables(monkeypatch):
    for name in ("ODPS_ENDPOINT", "ODPS_ACCESS_ID", "ODPS_ACCESS_KEY", "LINGJIE_ODPS_CREDENTIALS",
                 "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as err:
        OdpsSource("odps://proj/tables/clicks")
    assert "ODPS_ENDPOINT" in str(err.value) and "ODPS_ACCESS_KEY" in str(err.value)
