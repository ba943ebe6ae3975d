"""Delta exports in stream mode (a real Kafka-protocol broker on loopback): the stream run
writes a base export and a delta every 3 steps; the chain replayed on the base equals the
stream's final full export at the same step, bit for bit."""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from tests.conftest import compose
from tests.emulators.fixtures import kafka_broker  # noqa: F401  (fixture)


@pytest.mark.slow
def test_stream_deltas_replay_to_the_final_export(kafka_broker, tmp_path: Path,  # noqa: F811
                                                  movielens_table: Callable) -> None:
    from kafka import KafkaProducer

    from easyrec.serving import ExportedModel
    from easyrec.stream import StreamRun
    from tests.emulators.tansu import create_topic
    from trainer.run_dir import RunDir
    from trainer.schema.validate import validate

    topic = f"ratings-{uuid.uuid4().hex[:8]}"
    table = movielens_table(1500)
    create_topic(kafka_broker.bootstrap, topic, 1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=0)
    for row in table.drop_columns(["hist_item_id"]).to_pylist():
        producer.send(topic, json.dumps(row).encode(), partition=0)
    producer.flush()
    producer.close()
    url = f"kafka://{kafka_broker.bootstrap}/{topic}?group=lingjie-deltas&offset=earliest"
    spec = validate(compose([
        "+experiment=movielens_deepfm", "trainer.mode=stream", f"data.train_path='{url}'", "data.eval_path=null",
        "data.dataset=null", "data.batch_size=50", "trainer.stream.fit_rows=200", "trainer.max_steps=9",
        "trainer.stream.checkpoint_every_steps=100", "trainer.stream.idle_timeout_s=6",
        "trainer.stream.max_wait_s=0.2", "trainer.export.delta_every_steps=3", "trainer.export.full_every_deltas=100",
        "hardware.threads=1"]))
    run = RunDir(tmp_path / "run")
    run.create()
    job = StreamRun(spec, run, None)
    try:
        job.train(job.start(), {"flag": False})
        kept = tmp_path / "kept"
        shutil.copytree(run.export, kept)  # the base + the deltas, before the final full export
        job.finish()
    finally:
        job.source.close()
    assert job.counters["steps"] == 9, job.counters
    assert json.loads((run.export / "meta.json").read_text())["version"] == "9"
    model, full = ExportedModel(kept), ExportedModel(run.export)
    assert model.version == "0" and model.apply_pending_deltas() == [3, 6, 9]
    rows = table.slice(0, 300)
    np.testing.assert_array_equal(model.predict(rows)["like"], full.predict(rows)["like"])
