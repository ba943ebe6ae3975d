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
from trainer.redaction import meta_at_rest
from easyrec.schema import RunSpec

log = logging.getLogger("lingjie.stream")


def _check_resume(spec: RunSpec, run: RunDir, ckpt: Path) -> None:
    """Refuse a resume whose model / features / labels differ from the checkpoint's; the run
    is released first, so the refusal does not mark it FAILED (it is as good as it was)."""
    from easyrec.recipe import RecRecipe
    from trainer.run_lock import release_run_lock

    try:
        RecRecipe(spec).check_resume(ckpt)
    except ConfigError:
        release_run_lock(run.root)
        raise


def run_stream(spec: RunSpec, run: RunDir, config_yaml: str) -> Path:
    """trainer.mode=stream: train from the kafka:// topic until max_steps, idle or SIGTERM."""
    from trainer.process import resolve_run, seed_everything, setup_threads, write_config

    if not (spec.root.data.train_path or "").startswith("kafka://"):
        raise ConfigError("data.train_path", "trainer.mode=stream reads a kafka:// URL, e.g. "
                          "'kafka://127.0.0.1:9092/topic?group=lingjie&offset=earliest'")
    run, resumed = resolve_run(spec, run)
    ckpt = run.latest_checkpoint() if resumed else None
    if ckpt is not None:
        _check_resume(spec, run, ckpt)
    else:  # a resumed run keeps the config.yaml it was trained with
        write_config(run, config_yaml)
    setup_threads(spec)
    seed_everything(spec.root.seed, spec.root.trainer.backend)
    job = StreamRun(spec, run, ckpt)
    stop = job.stop
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    try:
        job.train(job.start(), stop)
        job.finish()
    finally:
        signal.signal(signal.SIGTERM, previous)
        job.source.close()
    return run.root


class StreamRun:
    """One stream run: the Kafka source, the pipeline and engine, counters and offsets."""

    def __init__(self, spec: RunSpec, run: RunDir, ckpt: Path | None) -> None:
        from dataio.kafka_source import KafkaSource, offsets_from_json
        from easyrec.features.pipeline import FeaturePipeline
        from easyrec.recipe import RecRecipe
        from trainer.checkpoint_io import read_meta

        self.spec, self.run, self.ckpt = spec, run, ckpt
        self.recipe = RecRecipe(spec)
        self.meta = read_meta(ckpt) if ckpt else None
        data, st = spec.root.data, spec.root.trainer.stream
        self.pipeline = make_pipeline(spec)
        if self.meta is not None:
            self.pipeline = FeaturePipeline.from_state_dict(self.meta["feature_state"])
        self.source = KafkaSource(data.train_path, format=st.format,
                                  columns=self.pipeline.required_columns(with_labels=True), schema=st.schema,
                                  on_error=data.on_error,
                                  dead_letter_path=run.root / "dead_letter.jsonl" if st.dead_letter else None,
                                  consumer_options=data.storage_options or None)
        self.counters = {"records": 0, "steps": 0, "checkpoints": 0, "loss_sum": 0.0, "loss_n": 0}
        if self.meta is not None:
            self.source.seek(offsets_from_json(self.meta["stream"]["offsets"]))
            self.counters.update({k: self.meta["stream"][k] for k in ("records", "steps", "checkpoints")})
            log.info("resumed from %s at offsets %s", ckpt.name, self.meta["stream"]["offsets"])
        self.offsets = dict(self.source.positions())  # before anything is consumed (the warm-up reads ahead)
        self.engine: Any = None
        self.deltas: Any = None  # easyrec.delta_writer.DeltaWriter with delta exports on
        self.extra: dict[str, Any] = {}  # config + feature state, inside every checkpoint
        self.started = self.last_ckpt_time = time.monotonic()
        self.stop = {"flag": False}  # set by SIGTERM: the consumer stops waiting, the run checkpoints

    def start(self) -> Iterator:
        """The record stream, after fitting the feature state on its first rows (a fresh run)
        and building the engine (restored from the checkpoint when resuming)."""
        from easyrec.restore import make_engine
        from trainer.process import device

        root, st = self.spec.root, self.spec.root.trainer.stream
        stream: Iterator = self.source.iter_batches(root.data.batch_size, st.max_wait_s,
                                                    idle_timeout_s=st.idle_timeout_s,
                                                    stop=lambda: self.stop["flag"])
        if self.meta is None:
            warm, stream = _warm_up(stream, st.fit_rows)
            if not warm:
                raise DataError("the topic delivered no records before the idle timeout; nothing to fit on",
                                file=self.source.url.shown())
            self.pipeline.fit([rb for rb, _ in warm])
            log.info("fitted feature state on the first %d streamed rows", sum(rb.num_rows for rb, _ in warm))
            stream = itertools.chain(warm, stream)
        self.pipeline.save(str(self.run.feature_state))
        self.engine = make_engine(root.trainer.backend, self.spec.model, self.pipeline, root.trainer,
                                  device(self.spec), root.trainer.max_steps or 1_000_000, None,
                                  root.hardware.precision)
        if self.ckpt is not None:
            self.engine.restore(self.ckpt)
        self.recipe.pipeline = self.pipeline
        self.extra = meta_at_rest(self.recipe.checkpoint_meta())
        self.deltas = self._delta_writer()
        if self.deltas is not None:  # the base the first deltas apply to
            self.deltas.full(self.engine.model, self.counters["steps"])
        self.started = self.last_ckpt_time = time.monotonic()
        return stream

    def _delta_writer(self) -> Any:
        """trainer.export.delta_every_*: the DeltaWriter whose full exports are this run's, or None."""
        from easyrec.delta_format import check_delta_config, deltas_on

        trainer = self.spec.root.trainer
        if not (deltas_on(trainer.export) and trainer.export.enabled):
            return None
        check_delta_config(trainer)
        from easyrec.delta_writer import DeltaWriter

        return DeltaWriter(trainer.export, self.run.export, self._export_full)

    def train(self, stream: Iterator, stop: dict[str, bool]) -> None:
        """Train on every batch; log its offset ranges; checkpoint on schedule; stop on
        max_steps or SIGTERM."""
        root, st, c = self.spec.root, self.spec.root.trainer.stream, self.counters
        with open(self.run.root / "stream_trained.jsonl", "a", buffering=1) as trained_log:
            for rb, after in stream:
                loss, _ = self.engine.train_step(self.pipeline.transform(rb, with_labels=True))
                c["steps"] += 1
                c["records"] += rb.num_rows
                c["loss_sum"] += loss * rb.num_rows
                c["loss_n"] += rb.num_rows
                ranges = {f"{t}:{p}": [self.offsets.get((t, p), after[(t, p)]), after[(t, p)]]
                          for (t, p) in after if after[(t, p)] != self.offsets.get((t, p))}
                trained_log.write(json.dumps({"step": c["steps"], "rows": rb.num_rows, "ranges": ranges}) + "\n")
                self.offsets = dict(after)
                if self.deltas is not None:
                    self.deltas.maybe_write(self.engine.model, c["steps"])
                due_steps = st.checkpoint_every_steps and c["steps"] % st.checkpoint_every_steps == 0
                due_time = st.checkpoint_every_seconds and \
                    time.monotonic() - self.last_ckpt_time >= st.checkpoint_every_seconds
                if due_steps or due_time:
                    self.checkpoint()
                if root.trainer.max_steps and c["steps"] >= root.trainer.max_steps:
                    log.info("max_steps reached")
                    break
                if stop["flag"]:
                    log.info("SIGTERM: checkpointing and stopping")
                    break

    def checkpoint(self, final: bool = False) -> None:
        """Save (offsets inside), then commit the offsets to the group: at-least-once."""
        from dataio.kafka_source import offsets_to_json
        from trainer.loop import prune_step_checkpoints

        c, st = self.counters, self.spec.root.trainer.stream
        c["checkpoints"] += 1
        stream_meta = {"offsets": offsets_to_json(self.offsets), **{k: c[k] for k in ("records", "steps", "checkpoints")}}
        self.engine.save(self.run, f"step-{c['steps']:08d}", {"stream": stream_meta, **self.extra})
        prune_step_checkpoints(self.run, self.spec.root.trainer.checkpoint.keep_last)
        if self.source.group:  # the checkpoint is durable: now the group may move on
            self.source.commit(self.offsets)
        self.last_ckpt_time = time.monotonic()
        k = st.export_every_checkpoints
        if not final and k and c["checkpoints"] % k == 0:
            self.export()
        self.write_metrics(final=False)

    def export(self) -> Path:
        """A full export labelled with the step (with delta exports: the new base of the chain)."""
        if self.deltas is not None:
            return self.deltas.full(self.engine.model, self.counters["steps"])
        return self._export_full(str(self.counters["steps"]))

    def _export_full(self, version: str) -> Path:
        from trainer.lifecycle import Restored

        return self.recipe.export(Restored(self.engine, self.pipeline, self.spec), self.run, _example(self.pipeline),
                                  version=version)

    def finish(self) -> None:
        """The final checkpoint, export, metrics.json and DONE marker."""
        self.checkpoint(final=True)
        if self.spec.root.trainer.export.enabled:
            self.export()
        self.write_metrics(final=True)
        atomic_write_bytes(self.run.done_marker, b"")
        c = self.counters
        log.info("stream: %d records in %d steps, %d checkpoints", c["records"], c["steps"], c["checkpoints"])

    def write_metrics(self, final: bool) -> None:
        _write_metrics(self.run, self.spec, self.counters, time.monotonic() - self.started, self.source.stats,
                       final=final)


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
