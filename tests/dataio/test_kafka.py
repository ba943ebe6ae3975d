"""KafkaSource against a real Kafka-protocol broker (Tansu, loopback): the stream-mode contract.

Assertions are on consumed records, never on lag: Tansu's end offsets can be wrong after
fast batched produces (see DESIGN.md). Where a test needs exact end offsets ("latest") it
produces one record per request.
"""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pyarrow as pa
import pytest

from tests.emulators.fixtures import kafka_broker  # noqa: F401  (fixture)
from lingjie.errors import ConfigError, DataError

FAST = {"max_wait_s": 0.2, "idle_timeout_s": 1.5}  # generous: CI machines are shared


@pytest.fixture(scope="module")
def producer(kafka_broker):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=0)
    yield p
    p.close()


@pytest.fixture
def topic(kafka_broker):
    """A fresh topic name per test; ``topic(n)`` creates it with n partitions."""
    from tests.emulators.tansu import create_topic

    def make(partitions: int = 1) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        create_topic(kafka_broker.bootstrap, name, partitions)
        return name

    return make


def url(broker, topic: str, **query) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"kafka://{broker.bootstrap}/{topic}" + (f"?{q}" if q else "")


def send_json(producer, topic: str, rows: list[dict], partitions: int = 1, one_by_one=False) -> None:
    for i, row in enumerate(rows):
        producer.send(topic, json.dumps(row).encode(), partition=i % partitions)
        if one_by_one:
            producer.flush()
    producer.flush()


def source(*args, **kw):
    from dataio.kafka_source import KafkaSource

    kw.setdefault("retry", {"tries": 2, "first_delay_s": 0.05, "timeout_s": 2})
    return KafkaSource(*args, **kw)


def rows_of(batches) -> list[dict]:
    return [r for b, _ in batches for r in b.to_pylist()]


def test_json_batches_carry_the_offsets_after_them(kafka_broker, producer, topic):
    t = topic(2)
    send_json(producer, t, [{"id": i, "v": i * 0.5} for i in range(100)], partitions=2)
    with source(url(kafka_broker, t, offset="earliest"), metadata_columns=True,
                schema={"id": "int64", "v": "float64"}) as src:
        assert src.assignment == [(t, 0), (t, 1)]
        assert src.positions() == {(t, 0): 0, (t, 1): 0}
        batches = list(src.iter_batches(16, **FAST))
        high: dict = {}
        for batch, offsets in batches:
            assert 0 < batch.num_rows <= 16
            for p, o in zip(batch.column("_kafka_partition").to_pylist(),
                            batch.column("_kafka_offset").to_pylist()):
                high[(t, p)] = max(high.get((t, p), -1), o + 1)
            assert offsets == {k: high.get(k, 0) for k in offsets}  # exactly after this batch
        assert sorted(r["id"] for r in rows_of(batches)) == list(range(100))
        assert batches[-1][1] == {(t, 0): 50, (t, 1): 50}
        assert src.stats["messages"] == 100 and src.stats["rows"] == 100
        assert src.stats["by_partition"] == {f"{t}:0": 50, f"{t}:1": 50}
        assert batches[0][0].schema.field("id").type == pa.int64()


def test_resume_from_saved_offsets_is_exact(kafka_broker, producer, topic):
    from dataio.kafka_source import offsets_from_json, offsets_to_json

    t = topic(3)
    send_json(producer, t, [{"id": i} for i in range(150)], partitions=3)
    with source(url(kafka_broker, t)) as first:
        stream = first.iter_batches(20, **FAST)
        before = [next(stream) for _ in range(3)]
        saved = json.loads(json.dumps(offsets_to_json(before[-1][1])))  # as a checkpoint stores it
        lost = next(stream)  # read after the checkpoint, "crash" before the next one
    assert lost[0].num_rows == 20
    with source(url(kafka_broker, t)) as second:
        second.seek(saved)
        assert second.positions() == offsets_from_json(saved)
        after = list(second.iter_batches(20, **FAST))
    got = [r["id"] for r in rows_of(before)] + [r["id"] for r in rows_of(after)]
    assert sorted(got) == list(range(150)) and len(got) == 150  # each record exactly once
    assert set(r["id"] for r in lost[0].to_pylist()) <= set(r["id"] for r in rows_of(after))


def test_group_offsets_are_committed_only_when_the_caller_says(kafka_broker, producer, topic):
    t = topic(2)
    group = f"g-{uuid.uuid4().hex[:6]}"
    send_json(producer, t, [{"id": i} for i in range(60)], partitions=2)
    with source(url(kafka_broker, t, group=group)) as src:
        batches = list(src.iter_batches(10, **FAST))
        assert src.committed() == {}  # reading never commits
        checkpoint = batches[1][1]
        src.commit(checkpoint)
        assert src.committed() == checkpoint
    with source(url(kafka_broker, t, group=group)) as resumed:  # no offset=: the group's offsets
        assert resumed.positions() == checkpoint
        rest = rows_of(resumed.iter_batches(100, **FAST))
    assert sorted(r["id"] for r in rows_of(batches[:2]) + rest) == list(range(60))
    with source(url(kafka_broker, t, group=group, offset="earliest")) as replay:  # explicit wins
        assert sorted(r["id"] for r in rows_of(replay.iter_batches(100, **FAST))) == list(range(60))


def test_offset_latest_and_timestamp(kafka_broker, producer, topic):
    t = topic(1)
    send_json(producer, t, [{"id": i} for i in range(5)], one_by_one=True)
    with source(url(kafka_broker, t, offset="latest")) as latest:
        assert latest.positions() == {(t, 0): 5}
        send_json(producer, t, [{"id": i} for i in range(5, 8)], one_by_one=True)
        assert [r["id"] for r in rows_of(latest.iter_batches(10, **FAST))] == [5, 6, 7]
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    send_json(producer, t, [{"id": i} for i in range(8, 11)], one_by_one=True)
    with source(url(kafka_broker, t, offset=cut)) as since:
        assert [r["id"] for r in rows_of(since.iter_batches(10, **FAST))] == [8, 9, 10]
    with source(url(kafka_broker, t, offset=cut + 3_600_000)) as future:  # nothing that late
        assert future.positions() == {(t, 0): 11}


def test_partitions_are_dealt_round_robin_over_ranks(kafka_broker, producer, topic):
    t = topic(5)
    send_json(producer, t, [{"id": i} for i in range(100)], partitions=5)
    seen = []
    for rank, expected in ((0, [0, 2, 4]), (1, [1, 3])):
        with source(url(kafka_broker, t), rank=rank, world_size=2) as src:
            assert src.assignment == [(t, p) for p in expected]
            got = rows_of(src.iter_batches(32, **FAST))
            assert {r["id"] % 5 for r in got} == set(expected)
            seen += [r["id"] for r in got]
    assert sorted(seen) == list(range(100))


def test_malformed_messages_go_to_the_dead_letter_file(kafka_broker, producer, topic, tmp_path):
    t = topic(1)
    raw = [b'{"id": 0, "name": "a"}', b"{not json", b'{"id": 2, "name": "c"}', b"",
           b'{"id": "three", "name": "d"}', b"[1, 2]", b'{"id": 6, "name": "g"}']
    for value in raw:
        producer.send(t, value, partition=0)
    producer.flush()
    dead = tmp_path / "dead" / "letters.jsonl"
    with source(url(kafka_broker, t), schema={"id": "int64", "name": "string"},
                on_error="skip", dead_letter_path=dead) as src:
        batches = list(src.iter_batches(100, **FAST))
        assert [r["id"] for r in rows_of(batches)] == [0, 2, 6]
        assert batches[-1][1] == {(t, 0): 7}  # skipped messages are behind the offsets too
        assert src.stats["bad_messages"] == 4 and src.stats["dead_lettered"] == 4
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [d["offset"] for d in letters] == [1, 3, 4, 5]
    for d in letters:
        assert d["topic"] == t and d["partition"] == 0 and d["error"]
        assert base64.b64decode(d["raw_b64"]) == raw[d["offset"]]


def test_malformed_message_raises_naming_where_it_is(kafka_broker, producer, topic):
    t = topic(1)
    for value in (b'{"id": 0}', b'{"id": 1}', b"{oops"):
        producer.send(t, value, partition=0)
    producer.flush()
    with source(url(kafka_broker, t)) as src:
        with pytest.raises(DataError) as err:
            list(src.iter_batches(100, **FAST))
    text = str(err.value)
    assert "partition 0 at offset 2" in text and t in text and "on_error='skip'" in text


def test_csv_messages_with_a_declared_field_order(kafka_broker, producer, topic):
    t = topic(1)
    for value in (b"1,apple,0", b"2,pear,1\n", b"3,plum", b"x,fig,1", b"5,kiwi,1"):
        producer.send(t, value, partition=0)
    producer.flush()
    schema = {"user": "int64", "item": "string", "label": "int8"}
    with source(url(kafka_broker, t, format="csv"), schema=schema, columns=["item", "label"],
                on_error="skip") as src:
        batches = list(src.iter_batches(100, **FAST))
        table = pa.Table.from_batches([b for b, _ in batches])
        assert table.column_names == ["item", "label"]
        assert table.schema.field("label").type == pa.int8()
        assert table.column("item").to_pylist() == ["apple", "pear", "kiwi"]
        assert src.stats["bad_messages"] == 2  # wrong field count; "x" is not an int64


def test_arrow_ipc_messages_are_never_split(kafka_broker, producer, topic):
    t = topic(1)
    for k in range(6):
        tbl = pa.table({"id": pa.array(range(k * 10, k * 10 + 10), pa.int32()),
                        "w": pa.array([1.0] * 10, pa.float32())})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tbl.schema) as writer:
            writer.write_table(tbl)
        producer.send(t, sink.getvalue().to_pybytes(), partition=0)
    producer.send(t, b"not arrow", partition=0)
    producer.flush()
    with source(url(kafka_broker, t), format="arrow", on_error="skip", metadata_columns=True) as src:
        stream = src.iter_batches(25, **FAST)
        first, _ = next(stream)  # the rest of that poll waits, decoded, for the next batch
        src.seek({(t, 0): 0})  # ... and is forgotten by a seek
        batches = list(src.iter_batches(25, **FAST))
    assert first.num_rows == 30
    assert [b.num_rows for b, _ in batches] == [30, 30]
    assert batches[0][1] == {(t, 0): 3} and batches[-1][1] == {(t, 0): 7}
    assert batches[0][0].column("_kafka_offset").to_pylist()[:11] == [0] * 10 + [1]
    assert sorted(r["id"] for r in rows_of(batches)) == list(range(60))
    assert batches[0][0].schema.field("id").type == pa.int32()


def test_max_wait_yields_a_partial_batch(kafka_broker, producer, topic):
    t = topic(1)
    send_json(producer, t, [{"id": i} for i in range(3)])
    with source(url(kafka_broker, t)) as src:
        start = time.monotonic()
        batch, offsets = next(src.iter_batches(1000, max_wait_s=0.3))
        assert batch.num_rows == 3 and offsets == {(t, 0): 3}
        assert time.monotonic() - start < 5


def test_inferred_schema_is_fixed_after_the_first_messages(kafka_broker, producer, topic):
    t = topic(1)
    for value in (b'{"a": 1, "b": null}', b'{"a": 2, "b": "x"}', b'{"a": "text", "b": "y"}'):
        producer.send(t, value, partition=0)
        producer.flush()
    with source(url(kafka_broker, t), on_error="skip") as src:
        rows = []
        for batch, _ in src.iter_batches(1, **FAST):
            rows += batch.to_pylist()
        assert rows == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]
        assert src.schema() == pa.schema([("a", pa.int64()), ("b", pa.string())])


def test_unreachable_broker_is_one_clear_error(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "trainer")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-pa55word-never-shown")
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        source("kafka://127.0.0.1:9/clicks?group=g",
               retry={"tries": 2, "first_delay_s": 0.05, "timeout_s": 0.5})
    assert time.monotonic() - start < 10
    text = str(err.value)
    assert "127.0.0.1:9" in text and "after 2 tries" in text
    assert "kafka-pa55word-never-shown" not in text + caplog.text


def test_missing_topic_is_named(kafka_broker, topic):
    existing = topic(1)
    with pytest.raises(DataError) as err:
        source(url(kafka_broker, "no-such-topic"), retry={"tries": 1})
    assert "'no-such-topic' does not exist" in str(err.value) and existing in str(err.value)


def test_url_and_argument_errors(kafka_broker, topic):
    t = topic(1)
    with pytest.raises(ConfigError, match="did you mean: offset"):
        source(url(kafka_broker, t, ofset="earliest"))
    with pytest.raises(ConfigError) as err:
        source(f"kafka://user:hunter2secret@{kafka_broker.bootstrap}/{t}")
    assert "hunter2secret" not in str(err.value) and "KAFKA_SASL_PASSWORD" in str(err.value)
    with pytest.raises(ConfigError, match="earliest, latest"):
        source(url(kafka_broker, t, offset="yesterday"))
    with pytest.raises(ConfigError, match="field order"):
        source(url(kafka_broker, t), format="csv")
    with source(url(kafka_broker, t)) as src, pytest.raises(ConfigError, match="group"):
        src.commit({(t, 0): 0})


def test_open_source_dispatches_by_scheme(kafka_broker, topic, tmp_path):
    from dataio.kafka_source import KafkaSource
    from dataio.odps import OdpsSource
    from dataio.source import Source
    from dataio.sources import is_stream, open_source

    t = topic(1)
    with open_source(url(kafka_broker, t), retry={"tries": 1}) as src:
        assert isinstance(src, KafkaSource) and is_stream(url(kafka_broker, t))
    (tmp_path / "a.csv").write_text("id\n1\n")
    assert isinstance(open_source(str(tmp_path / "a.csv")), Source)
    import pyarrow.parquet as pq

    (tmp_path / "proj" / "tbl").mkdir(parents=True)
    pq.write_table(pa.table({"id": [1]}), tmp_path / "proj" / "tbl" / "0.parquet")
    odps = open_source("odps://proj/tables/tbl", storage_options={"local_root": str(tmp_path)})
    assert isinstance(odps, OdpsSource) and not is_stream("odps://proj/tables/tbl")
