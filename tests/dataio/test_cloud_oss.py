"""oss:// through the real ossfs/oss2 clients against the OSS emulator (loopback, V1 signatures)."""
from __future__ import annotations

import io
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataio.remote_atomic import atomic_open_url, atomic_upload, atomic_write_url, open_url
from dataio.source import Source
from tests.emulators.fixtures import oss_server  # noqa: F401  (fixture)
from lingjie.errors import ConfigError, DataError

BUCKET = "lingjie-data"


def parquet_bytes(table: pa.Table, row_group_size: int = 64) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


def table(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": ids, "x": [i * 0.5 for i in ids], "s": [f"s{i}" for i in ids]})


@pytest.fixture(scope="module")
def data(oss_server):
    oss_server.create_bucket(BUCKET)
    for k in range(3):
        oss_server.put(BUCKET, f"train/part-{k}.parquet", parquet_bytes(table(k * 300, 300)))
    oss_server.put(BUCKET, "train/_SUCCESS", b"")
    oss_server.put(BUCKET, "csv/a.csv", b"id,x\n1,0.5\n2,1.0\n")
    oss_server.put(BUCKET, "csv/b.jsonl", b'{"id": 3, "x": 1.5}\n')
    return oss_server


def ids(src, **kw) -> list[int]:
    return [i for b in src.iter_batches(128, **kw) for i in b.column("id").to_pylist()]


def test_glob_of_parquet_objects_streams_every_row_with_range_reads(data):
    data.calls.clear()
    src = Source(f"oss://{BUCKET}/train/*.parquet", storage_options=data.storage_options())
    assert src.files == [f"oss://{BUCKET}/train/part-{k}.parquet" for k in range(3)]
    assert ids(src) == list(range(900))
    assert src.count_rows() == 900
    assert data.calls["GetObjectRange"] > 0 and data.calls["ListObjects"] > 0


def test_directory_and_mixed_formats(data):
    src = Source(f"oss://{BUCKET}/csv/a.csv", storage_options=data.storage_options())
    assert ids(src) == [1, 2]
    src = Source([f"oss://{BUCKET}/csv/a.csv", f"oss://{BUCKET}/csv/b.jsonl"],
                 storage_options=data.storage_options())
    assert sorted(ids(src)) == [1, 2, 3]
    src = Source(f"oss://{BUCKET}/train", storage_options=data.storage_options())  # _SUCCESS skipped
    assert len(src.files) == 3


def test_sharding_over_oss_matches_local_reads(data, tmp_path):
    for k in range(3):
        pq.write_table(table(k * 300, 300), tmp_path / f"part-{k}.parquet", row_group_size=64)
    remote = Source(f"oss://{BUCKET}/train/", storage_options=data.storage_options(), read_rows=100)
    local = Source(str(tmp_path), read_rows=100)
    seen = []
    for rank in range(3):
        r = ids(remote, rank=rank, world_size=3, shuffle=True, seed=7)
        assert r == ids(local, rank=rank, world_size=3, shuffle=True, seed=7)
        seen += r
    assert sorted(seen) == list(range(900))


def test_credentials_from_environment(data, monkeypatch):
    monkeypatch.setenv("OSS_ENDPOINT", data.endpoint)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", data.access_key_id)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", data.access_key_secret)
    assert ids(Source(f"oss://{BUCKET}/csv/a.csv")) == [1, 2]


def test_credentials_from_file_named_by_env(data, monkeypatch, tmp_path):
    for name in ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET",
                 "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    cred = tmp_path / "ossutilconfig"
    cred.write_text(f"[Credentials]\nendpoint = {data.endpoint}\naccessKeyID = {data.access_key_id}\n"
                    f"accessKeySecret = {data.access_key_secret}\n")
    monkeypatch.setenv("LINGJIE_OSS_CREDENTIALS", str(cred))
    assert ids(Source(f"oss://{BUCKET}/csv/a.csv")) == [1, 2]


def test_missing_credentials_is_a_config_error_naming_the_variables(data, monkeypatch):
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_ID",
                 "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "LINGJIE_OSS_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as err:
        Source(f"oss://{BUCKET}/csv/a.csv", storage_options={"endpoint": data.endpoint})
    text = str(err.value)
    assert "OSS_ACCESS_KEY_ID" in text and "OSS_ACCESS_KEY_SECRET" in text
    assert "LINGJIE_OSS_CREDENTIALS" in text
    monkeypatch.delenv("OSS_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="OSS_ENDPOINT"):
        Source(f"oss://{BUCKET}/csv/a.csv")


def test_wrong_secret_is_access_denied_without_the_secret(data):
    wrong = "Wr0ngSecretValue-do-not-print"
    with pytest.raises(DataError) as err:
        Source(f"oss://{BUCKET}/csv/a.csv",
               storage_options={**data.storage_options(), "secret": wrong})
    assert "access denied" in str(err.value) and "SignatureDoesNotMatch" in str(err.value)
    assert wrong not in str(err.value) and wrong not in repr(err.value)


def test_unreachable_endpoint_retries_with_backoff_then_one_error(caplog):
    secret = "UnreachableSecret-123456"
    opts = {"endpoint": "http://127.0.0.1:9", "key": "AK", "secret": secret}
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        Source(f"oss://{BUCKET}/train/*.parquet", storage_options=opts,
               retry={"tries": 3, "first_delay_s": 0.05, "multiplier": 2.0})
    elapsed = time.monotonic() - start
    text = str(err.value)
    assert "http://127.0.0.1:9" in text and "after 3 tries" in text
    assert secret not in text and secret not in caplog.text
    assert 0.15 <= elapsed < 20  # slept 0.05 + 0.1 between the tries
    assert sum("try 1 of 3" in r.getMessage() or "try 2 of 3" in r.getMessage()
               for r in caplog.records) == 2


def test_transient_server_errors_are_retried(data):
    data.fail_next(2)
    src = Source(f"oss://{BUCKET}/csv/a.csv", storage_options=data.storage_options(),
                 retry={"tries": 3, "first_delay_s": 0.01})
    assert ids(src) == [1, 2]
    data.fail_next(1000)
    with pytest.raises(DataError, match="after 2 tries"):
        Source(f"oss://{BUCKET}/csv/a.csv", storage_options=data.storage_options(),
               retry={"tries": 2, "first_delay_s": 0.01})
    data.fail_next(0)


def test_corrupt_parquet_object_is_named(data):
    good = parquet_bytes(table(0, 10))
    data.put(BUCKET, "bad/ok.parquet", good)
    data.put(BUCKET, "bad/broken.parquet", good[:-40] + b"\0" * 40)  # footer destroyed
    src = Source(f"oss://{BUCKET}/bad/*.parquet", storage_options=data.storage_options())
    with pytest.raises(DataError) as err:
        list(src.iter_batches(4))
    assert err.value.file == f"oss://{BUCKET}/bad/broken.parquet"
    assert f"oss://{BUCKET}/bad/broken.parquet" in str(err.value)


def test_atomic_writes_publish_whole_objects(data, tmp_path):
    data.create_bucket("lingjie-ckpt")
    opts = data.storage_options()
    data.calls.clear()
    atomic_write_url("oss://lingjie-ckpt/run/metrics.json", b'{"auc": 0.7}', opts)
    assert data.get("lingjie-ckpt", "run/metrics.json") == b'{"auc": 0.7}'
    assert data.calls["PutObject"] == 1 and data.calls["AppendObject"] == 0
    big = os.urandom(2_500_000)
    local = tmp_path / "model.pt"
    local.write_bytes(big)
    atomic_upload(local, "oss://lingjie-ckpt/run/model.pt", opts,
                  multipart_threshold=1 << 20, part_bytes=1 << 20)
    assert data.calls["InitiateMultipartUpload"] == 1 and data.calls["UploadPart"] == 3
    assert data.calls["CompleteMultipartUpload"] == 1
    with open_url("oss://lingjie-ckpt/run/model.pt", storage_options=opts) as fh:
        assert fh.read() == big
    with pytest.raises(RuntimeError):
        with atomic_open_url("oss://lingjie-ckpt/run/never.pt", opts) as fh:
            fh.write(b"partial")
            raise RuntimeError("crash while writing")
    assert "run/never.pt" not in data.keys("lingjie-ckpt")


def test_secrets_never_appear_in_reprs_errors_logs_or_files(data, tmp_path, caplog, monkeypatch):
    """Greps everything the source shows or writes for the secret."""
    import logging

    caplog.set_level(logging.DEBUG)
    secret = data.access_key_secret
    monkeypatch.setenv("OSS_ENDPOINT", data.endpoint)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", data.access_key_id)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", secret)
    shown = []
    src = Source(f"oss://{BUCKET}/train/*.parquet")
    shown += [repr(src), str(src.files), str(src.stats)]
    shown += [repr(f) for f in src._files]
    list(src.iter_batches(256))
    for bad in (f"oss://{BUCKET}/nothing/*.parquet", f"oss://{BUCKET}/csv/a.txt"):
        with pytest.raises(DataError) as err:
            Source(bad)
        shown += [str(err.value), repr(err.value)]
    atomic_write_url(f"oss://{BUCKET}/out/x.json", b"{}")
    from dataio.credentials import resolve_oss

    creds = resolve_oss(None)
    shown += [repr(creds), str(creds)]
    text = "\n".join(shown) + caplog.text
    assert secret not in text
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert secret.encode() not in written
    for key in data.keys(BUCKET):
        assert secret.encode() not in data.get(BUCKET, key)
