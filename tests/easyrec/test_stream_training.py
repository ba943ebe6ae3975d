"""Online training from a real Kafka-protocol broker (Tansu on loopback): SIGKILL mid-stream,
resume, and prove from the trainer's own record log that every record was trained on at
least once and none was lost; offsets are committed only with durable checkpoints."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pytest

from tests.conftest import ROOT, run_cli
from tests.emulators.fixtures import kafka_broker  # noqa: F401  (fixture)

N = 4000


def _produce(bootstrap: str, topic: str, partitions: int, table: pa.Table) -> None:
    from kafka import KafkaProducer

    from tests.emulators.tansu import create_topic

    create_topic(bootstrap, topic, partitions)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    rows = table.drop_columns(["hist_item_id"]).to_pylist()
    for i, row in enumerate(rows):
        producer.send(topic, json.dumps(row).encode(), partition=i % partitions)
    producer.flush()
    producer.close()


def _covered(run: Path) -> dict[str, set[int]]:
    seen: dict[str, set[int]] = {}
    for line in (run / "stream_trained.jsonl").read_text().splitlines():
        for tp, (lo, hi) in json.loads(line)["ranges"].items():
            seen.setdefault(tp, set()).update(range(lo, hi))
    return seen


@pytest.mark.slow
def test_stream_sigkill_resume_trains_every_record(kafka_broker, tmp_path: Path,  # noqa: F811
                                                  movielens_table: Callable) -> None:
    topic = f"ratings-{uuid.uuid4().hex[:8]}"
    _produce(kafka_broker.bootstrap, topic, partitions=2, table=movielens_table(N))
    url = f"kafka://{kafka_broker.bootstrap}/{topic}?group=lingjie-test&offset=earliest"
    run = tmp_path / "run"
    args = ["+experiment=movielens_deepfm", "trainer.mode=stream", f"data.train_path='{url}'",
            "data.eval_path=null", "data.dataset=null", "data.batch_size=32", "trainer.stream.fit_rows=400",
            "trainer.stream.checkpoint_every_steps=10", "trainer.stream.idle_timeout_s=4",
            "trainer.stream.max_wait_s=0.2", "trainer.progress_bar=false", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list((run / "checkpoints").glob("step-00000030.*")):
        if proc.poll() is not None:
            pytest.fail(f"stream trainer exited early: {proc.stderr.read()[-3000:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "DONE").exists()
    before = json.loads((run / "metrics.json").read_text())
    assert 0 < before["records_trained"] < N

    out = run_cli([*args, "trainer.resume=true"], cwd=tmp_path)
    assert "resumed from step-" in out.stdout + out.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and (run / "DONE").exists() and (run / "export" / "meta.json").exists()
    covered = _covered(run)
    assert sorted(covered) == [f"{topic}:0", f"{topic}:1"]
    for tp, offsets in covered.items():
        assert offsets == set(range(N // 2)), f"{tp}: records missing from training"
    assert metrics["records_trained"] >= N  # replays are allowed (at-least-once), losses are not
    # the group's committed offsets are those of the last durable checkpoint: the whole topic
    from dataio.kafka_source import KafkaSource

    src = KafkaSource(f"kafka://{kafka_broker.bootstrap}/{topic}?group=lingjie-test")
    try:
        committed = src.committed()
    finally:
        src.close()
    assert committed == {(topic, 0): N // 2, (topic, 1): N // 2}


@pytest.mark.slow
def test_stream_stops_cleanly_on_sigterm(kafka_broker, tmp_path: Path,  # noqa: F811
                                        movielens_table: Callable) -> None:
    topic = f"ratings-{uuid.uuid4().hex[:8]}"
    _produce(kafka_broker.bootstrap, topic, partitions=1, table=movielens_table(N))
    run = tmp_path / "run"
    args = ["+experiment=movielens_deepfm", "trainer.mode=stream",
            f"data.train_path='kafka://{kafka_broker.bootstrap}/{topic}?offset=earliest'", "data.eval_path=null",
            "data.dataset=null", "data.batch_size=16", "trainer.stream.fit_rows=200",
            "trainer.stream.checkpoint_every_steps=1000", "trainer.stream.max_wait_s=0.2",
            "trainer.progress_bar=false", "trainer.export.enabled=false", f"hydra.run.dir={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "stream_trained.jsonl").exists():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["checkpoints"] >= 1
    # one run, no replay: the records it counts are exactly those in its own record log
    assert 0 < metrics["records_trained"] <= N
    assert metrics["records_trained"] == sum(len(offsets) for offsets in _covered(run).values())
