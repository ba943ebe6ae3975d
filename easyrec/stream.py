"""trainer.mode=stream: online training from a Kafka topic, at-least-once.

    python -m trainer +experiment=movielens_deepfm trainer.mode=stream \\
        data.train_path='kafka://127.0.0.1:9092/ratings?group=lingjie&offset=earliest'

The consumer's offsets travel inside every checkpoint and are committed to the group only
after that checkpoint is durable (atomically renamed into place), so a crash replays records
and loses none; resume continues from the checkpoint's offsets. Every trained batch's offset
range is appended to ``<run_dir>/stream_trained.jsonl``: the trainer's own record of what it
trained on. Stops cleanly on trainer.max_steps, an idle timeout or SIGTERM (checkpoint +
commit first).
"""
from __future__ import annotations

import itertools
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any, Iterator

from dataio.atomic import atomic_write_bytes, atomic_write_json
from easyrec.data import make_pipeline
from lingjie.errors import ConfigError, DataError
from trainer.run_dir import RunDir
from easyrec.schema import RunSpec

log = logging.getLogger("lingjie.stream")


def run_stream(spec: RunSpec, run: RunDir, config_yaml: str) -> Path:
    from dataio.kafka_source import KafkaSource, offsets_from_json, offsets_to_json
    from easyrec.features.pipeline import FeaturePipeline
    from easyrec.recipe import RecRecipe
    from easyrec.restore import make_engine
    from trainer.checkpoint_io import read_meta
    from trainer.lifecycle import Restored
    from trainer.loop import prune_step_checkpoints
    from trainer.process import device, resolve_run, seed_everything, setup_threads, write_config

    root = spec.root
    st = root.trainer.stream
    data = root.data
    if not (data.train_path or "").startswith("kafka://"):
        raise ConfigError("data.train_path", "trainer.mode=stream reads a kafka:// URL, e.g. "
                          "'kafka://127.0.0.1:9092/topic?group=lingjie&offset=earliest'")
    run, resumed = resolve_run(spec, run)
    write_config(run, config_yaml)
    setup_threads(spec)
    seed_everything(root.seed, root.trainer.backend)
    recipe = RecRecipe(spec)

    ckpt = run.latest_checkpoint() if resumed else None
    meta = read_meta(ckpt) if ckpt else None
    pipeline = make_pipeline(spec)
    if meta is not None:
        pipeline = FeaturePipeline.from_state_dict(meta["feature_state"])
    source = KafkaSource(data.train_path, format=st.format, columns=pipeline.required_columns(with_labels=True),
                         schema=st.schema, on_error=data.on_error,
                         dead_letter_path=run.root / "dead_letter.jsonl" if st.dead_letter else None,
                         consumer_options=data.storage_options or None)
    counters = {"records": 0, "steps": 0, "checkpoints": 0, "loss_sum": 0.0, "loss_n": 0}
    if meta is not None:
        source.seek(offsets_from_json(meta["stream"]["offsets"]))
        counters.update({k: meta["stream"][k] for k in ("records", "steps", "checkpoints")})
        log.info("resumed from %s at offsets %s", ckpt.name, meta["stream"]["offsets"])
    start_positions = source.positions()  # before anything is consumed (the warm-up reads ahead)
    stop = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    try:
        stream: Iterator = source.iter_batches(data.batch_size, st.max_wait_s, idle_timeout_s=st.idle_timeout_s)
        if meta is None:
            warm, stream = _warm_up(stream, st.fit_rows)
            if not warm:
                raise DataError("the topic delivered no records before the idle timeout; nothing to fit on",
                                file=source.url.shown())
            pipeline.fit([rb for rb, _ in warm])
            log.info("fitted feature state on the first %d streamed rows", sum(rb.num_rows for rb, _ in warm))
            stream = itertools.chain(warm, stream)
        pipeline.save(str(run.feature_state))
        engine = make_engine(root.trainer.backend, spec.model, pipeline, root.trainer,
                             device(spec), root.trainer.max_steps or 1_000_000, None, root.hardware.precision)
        if ckpt is not None:
            engine.restore(ckpt)
        recipe.pipeline = pipeline
        extra = recipe.checkpoint_meta()
        last_ckpt_time = time.monotonic()
        started = time.monotonic()
        offsets = dict(start_positions)

        def checkpoint(final: bool = False) -> None:
            nonlocal last_ckpt_time
            counters["checkpoints"] += 1
            stream_meta = {"offsets": offsets_to_json(offsets), **{k: counters[k] for k in
                                                                   ("records", "steps", "checkpoints")}}
            engine.save(run, f"step-{counters['steps']:08d}", {"stream": stream_meta, **extra})
            prune_step_checkpoints(run, root.trainer.checkpoint.keep_last)
            if source.group:  # the checkpoint is durable: now the group may move on
                source.commit(offsets)
            last_ckpt_time = time.monotonic()
            k = st.export_every_checkpoints
            if not final and k and counters["checkpoints"] % k == 0:
                recipe.export(Restored(engine, pipeline, spec), run, _example(pipeline))
            _write_metrics(run, spec, counters, time.monotonic() - started, source.stats, final=False)

        with open(run.root / "stream_trained.jsonl", "a", buffering=1) as trained_log:
            for rb, after in stream:
                batch = pipeline.transform(rb, with_labels=True)
                loss, _ = engine.train_step(batch)
                counters["steps"] += 1
                counters["records"] += rb.num_rows
                counters["loss_sum"] += loss * rb.num_rows
                counters["loss_n"] += rb.num_rows
                ranges = {f"{t}:{p}": [offsets.get((t, p), after[(t, p)]), after[(t, p)]]
                          for (t, p) in after if after[(t, p)] != offsets.get((t, p))}
                trained_log.write(json.dumps({"step": counters["steps"], "rows": rb.num_rows, "ranges": ranges}) + "\n")
                offsets = dict(after)
                due_steps = st.checkpoint_every_steps and counters["steps"] % st.checkpoint_every_steps == 0
                due_time = st.checkpoint_every_seconds and time.monotonic() - last_ckpt_time >= st.checkpoint_every_seconds
                if due_steps or due_time:
                    checkpoint()
                if root.trainer.max_steps and counters["steps"] >= root.trainer.max_steps:
                    log.info("max_steps reached")
                    break
                if stop["flag"]:
                    log.info("SIGTERM: checkpointing and stopping")
                    break
        checkpoint(final=True)
        if root.trainer.export.enabled:
            recipe.export(Restored(engine, pipeline, spec), run, _example(pipeline))
        _write_metrics(run, spec, counters, time.monotonic() - started, source.stats, final=True)
        atomic_write_bytes(run.done_marker, b"")
        log.info("stream: %d records in %d steps, %d checkpoints", counters["records"], counters["steps"],
                 counters["checkpoints"])
    finally:
        signal.signal(signal.SIGTERM, previous)
        source.close()
    return run.root


def _example(pipeline: Any) -> Any:
    """Two rows of nulls for every input column: enough for tracing an export."""
    import pyarrow as pa

    rows = [{c: None for c in pipeline.required_columns(with_labels=False)} for _ in range(2)]
    return pipeline.transform(pa.Table.from_pylist(rows), with_labels=False)


def _warm_up(stream: Iterator, fit_rows: int) -> tuple[list, Iterator]:
    warm, rows = [], 0
    for item in stream:
        warm.append(item)
        rows += item[0].num_rows
        if rows >= fit_rows:
            break
    return warm, stream


def _write_metrics(run: RunDir, spec: RunSpec, c: dict[str, Any], seconds: float, stats: dict, final: bool) -> None:
    atomic_write_json(run.metrics, {
        "experiment": spec.root.experiment_name, "model": spec.model.name, "backend": spec.root.trainer.backend,
        "mode": "stream", "records_trained": c["records"], "steps": c["steps"], "checkpoints": c["checkpoints"],
        "train/loss": c["loss_sum"] / max(1, c["loss_n"]), "records_per_sec": c["records"] / max(seconds, 1e-9),
        "bad_messages": stats.get("bad_messages", 0), "dead_lettered": stats.get("dead_lettered", 0),
        "finished": final,
    })
