"""Data-source throughput: Kafka -> Arrow batches, and Parquet over OSS / WebHDFS vs local disk.

    .venv/bin/python benchmarks/bench_sources.py [--messages 200000] [--rows 1000000]

- Kafka: a real Kafka-protocol broker (Tansu, loopback, in-memory), 4 partitions; the
  messages are produced first (not timed), then ``KafkaSource.iter_batches(4096)`` is timed
  from construction to the last batch, for JSON, CSV and Arrow IPC (1,000 rows a message).
  kafka-python checks each record batch's CRC32C in pure Python unless the ``crc32c``
  package is installed; the ``check_crcs=False`` row shows what that check costs.
- Parquet: the same files (Criteo-shaped: 13 floats + 26 ints + a label, 8 files) read with
  ``Source.iter_batches(65536)`` from local disk, from the OSS emulator (real ossfs/oss2
  client, range GETs) and from the WebHDFS emulator (``hdfs://`` via pyhdfs and
  ``webhdfs://`` via fsspec; NameNode redirect + DataNode reads).

The emulators are single-process Python HTTP servers on loopback, so remote numbers measure
the clients' request pattern plus a local server, not a real network. Run on an idle machine;
on the shared 2-core machines numbers vary by about 2x.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def criteo_table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {"label": rng.integers(0, 2, rows, dtype=np.int8)}
    for i in range(13):
        cols[f"I{i + 1}"] = rng.random(rows, dtype=np.float32)
    for i in range(26):
        cols[f"C{i + 1}"] = rng.zipf(1.3, rows).astype(np.int64) % 100_000
    return pa.table(cols)


def timed_read(src, batch_size: int = 65536) -> tuple[int, float]:
    start = time.perf_counter()
    rows = sum(b.num_rows for b in src.iter_batches(batch_size))
    return rows, time.perf_counter() - start


def bench_parquet(rows: int, files: int, tmp: Path) -> list[tuple[str, int, float, float]]:
    from dataio.source import Source
    from tests.emulators.oss import OssEmulator
    from tests.emulators.webhdfs import WebHdfsEmulator

    local = tmp / "local"
    local.mkdir()
    blobs = []
    for k in range(files):
        buf = io.BytesIO()
        pq.write_table(criteo_table(rows // files, k), buf, row_group_size=65536)
        blobs.append(buf.getvalue())
        (local / f"part-{k}.parquet").write_bytes(blobs[-1])
    mb = sum(len(b) for b in blobs) / 1e6
    out = []
    n, s = timed_read(Source(str(local)))
    out.append(("parquet, local disk", n, s, mb))
    with OssEmulator(tmp / "oss") as oss:
        oss.create_bucket("bench-data")
        for k, blob in enumerate(blobs):
            oss.put("bench-data", f"criteo/part-{k}.parquet", blob)
        src = Source("oss://bench-data/criteo/", storage_options=oss.storage_options())
        n, s = timed_read(src)
        out.append(("parquet, oss:// (ossfs -> OSS emulator)", n, s, mb))
    with WebHdfsEmulator(tmp / "hdfs") as hdfs:
        for k, blob in enumerate(blobs):
            hdfs.put(f"/criteo/part-{k}.parquet", blob)
        for scheme, label in (("hdfs", "pyhdfs"), ("webhdfs", "fsspec")):
            n, s = timed_read(Source(hdfs.url("/criteo/", scheme)))
            out.append((f"parquet, {scheme}:// ({label} -> WebHDFS emulator)", n, s, mb))
    return out


def bench_kafka(messages: int) -> list[tuple[str, int, float, float]]:
    from kafka import KafkaProducer

    from dataio.kafka_source import KafkaSource
    from tests.emulators.tansu import TansuBroker, create_topic

    rng = np.random.default_rng(0)
    out = []
    with TansuBroker() as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20,
                                 batch_size=1 << 20, max_request_size=8 << 20)
        payloads = {
            "json": [json.dumps({"user_id": int(u), "item_id": int(i), "price": float(p),
                                 "click": int(c)}).encode()
                     for u, i, p, c in zip(rng.integers(0, 10**6, messages),
                                           rng.integers(0, 10**5, messages),
                                           rng.random(messages), rng.integers(0, 2, messages))],
        }
        payloads["csv"] = [b"%d,%d,%.6f,%d" % (d["user_id"], d["item_id"], d["price"], d["click"])
                           for d in map(json.loads, payloads["json"])]
        arrow_msgs = []
        for k in range(messages // 1000):
            t = pa.table({"user_id": rng.integers(0, 10**6, 1000), "item_id": rng.integers(0, 10**5, 1000),
                          "price": rng.random(1000), "click": rng.integers(0, 2, 1000)})
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, t.schema) as w:
                w.write_table(t)
            arrow_msgs.append(sink.getvalue().to_pybytes())
        payloads["arrow"] = arrow_msgs
        schema = {"user_id": "int64", "item_id": "int64", "price": "float64", "click": "int64"}
        runs = [(fmt, fmt, {}) for fmt in payloads] + [("json", "json, check_crcs=False",
                                                       {"check_crcs": False})]
        for fmt, label, consumer_options in runs:
            topic = f"bench-{fmt}"
            values = payloads[fmt]
            if not consumer_options:
                create_topic(broker.bootstrap, topic, 4)
                for j, v in enumerate(values):
                    producer.send(topic, v, partition=j % 4)
                producer.flush()
            mb = sum(len(v) for v in values) / 1e6
            start = time.perf_counter()
            src = KafkaSource(f"kafka://{broker.bootstrap}/{topic}?offset=earliest", format=fmt,
                              schema=schema, consumer_options=consumer_options)
            rows = 0
            for batch, _ in src.iter_batches(4096, max_wait_s=0.5, idle_timeout_s=1.0):
                rows += batch.num_rows
            elapsed = time.perf_counter() - start - 1.0  # the idle wait that ends the stream
            src.close()
            label = "arrow IPC (1,000 rows/msg)" if fmt == "arrow" else label
            out.append((f"kafka -> arrow, {label}", rows, elapsed, mb))
        producer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += bench_parquet(args.rows, args.files, Path(tmp))
    if not args.skip_kafka:
        results += bench_kafka(args.messages)
    print(f"\n{'source':<48} {'rows':>10} {'seconds':>8} {'rows/s':>11} {'MB/s':>7}")
    for name, rows, secs, mb in results:
        print(f"{name:<48} {rows:>10,} {secs:>8.2f} {rows / secs:>11,.0f} {mb / secs:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
