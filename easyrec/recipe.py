"""The recommendation domain's part of the training lifecycle (trainer.lifecycle.Recipe).

Its state is the fitted :class:`~easyrec.features.pipeline.FeaturePipeline` (vocabularies,
boundaries, statistics), fitted on rank 0 and shared with every rank, saved as
``feature_state.json`` and inside every checkpoint; its engine is torch (RecTorchEngine) or
TF (TFEngine) as ``trainer.backend`` says.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from dataio.sharding import shard_limit
from easyrec.data import count_rows, fit_pipeline, make_loader, make_pipeline, make_source
from lingjie.errors import ConfigError
from trainer.engine import Engine
from trainer.lifecycle import Loaders, Recipe, Restored, batches_per_epoch
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie")


class RecRecipe(Recipe):
    """Feature pipeline -> BatchLoader -> model-zoo entry on the chosen backend."""

    domain = "rec"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.pipeline: Any = None
        self._train_src: Any = None
        self._train_loader: Any = None
        self._engine: Any = None
        self.final_version = ""  # the version label of the final export (delta exports: its step)

    def check_resume(self, checkpoint: Path) -> None:
        """The backend first (a torch checkpoint cannot feed a TF model), then the model,
        features and labels (:meth:`Recipe.check_resume`)."""
        from trainer.checkpoint_io import checkpoint_backend

        trained_with = checkpoint_backend(checkpoint)
        if trained_with != self.backend:
            raise ConfigError("trainer.backend", f"the run to resume was trained with backend {trained_with}; "
                              f"resume it with trainer.backend={trained_with}")
        super().check_resume(checkpoint)

    def model_config_keys(self) -> list[str]:
        """The model, the feature columns (vocabularies, dims, buckets) and the labels (tasks)."""
        return ["model", "features", "data.labels"]

    def config_view(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        """Root-shaped: the typed model and features replace their raw YAML groups."""
        plain = meta["config"] if meta is not None else self._plain_config()
        return {**plain["root"], "features": plain["features"], "model": plain["model"]}

    def _plain_config(self) -> dict[str, Any]:
        from lingjie.schema import to_plain

        spec = self.spec
        plain = {"root": to_plain(spec.root), "features": to_plain(spec.features), "labels": to_plain(spec.labels),
                 "model": to_plain(spec.model)}
        return json.loads(json.dumps(plain))

    def fit_state(self, meta: dict[str, Any] | None, dist: Any, run: RunDir) -> None:
        from easyrec.features.pipeline import FeaturePipeline

        pipeline = make_pipeline(self.spec)
        if meta is not None:
            pipeline = FeaturePipeline.from_state_dict(meta["feature_state"])
        else:
            state = None
            if dist.is_main:  # rank 0 fits; every rank then uses the identical state
                t = time.perf_counter()
                fit_pipeline(self.spec, pipeline)
                log.info("fitted feature state on train in %.1fs", time.perf_counter() - t)
                state = pipeline.state_dict()
            if dist.distributed:
                pipeline = FeaturePipeline.from_state_dict(dist.all_gather_object(state)[0])
        if dist.is_main:
            pipeline.save(str(run.feature_state))
        self.pipeline = pipeline

    def loaders(self, dist: Any) -> Loaders:
        from easyrec.loader import BatchLoader

        spec, data = self.spec, self.spec.root.data
        # distributed: small chunks so that round-robin chunk sharding gives every rank a fair share
        shard_rows = min(data.read_rows, 4 * data.batch_size) if dist.distributed else data.read_rows
        if dist.kind == "tf" and dist.distributed:
            # TF workers all run the steps of the shortest shard (collectives; see EqualStepsLoader):
            # one-batch chunks keep the shards within one batch of each other
            shard_rows = min(data.read_rows, data.batch_size)
        self._train_src = make_source(spec, data.train_path, self.pipeline, with_labels=True, read_rows=shard_rows)
        lcfg = spec.root.trainer.loader
        self._train_loader = BatchLoader(
            self._train_src, self.pipeline, data.batch_size, shuffle=data.shuffle, seed=spec.root.seed,
            shuffle_buffer_rows=data.shuffle_buffer_rows,
            limit_rows=shard_limit(data.limit_train_rows, shard_rows, dist.rank, dist.world_size),
            rank=dist.rank, world_size=dist.world_size, prefetch=lcfg.prefetch,
            transform_batches=lcfg.transform_batches, workers=lcfg.workers, worker_type=lcfg.worker_type,
            cache=data.cache)
        eval_loader = make_loader(spec, self.pipeline, data.eval_path, train=False, dist=dist) \
            if data.eval_path else None
        train_rows = count_rows(self._train_src, data.limit_train_rows)
        eval_steps = batches_per_epoch(count_rows(eval_loader.source, data.limit_eval_rows), data.eval_batch_size) \
            if eval_loader else None
        return Loaders(self._train_loader, eval_loader,
                       batches_per_epoch(train_rows, data.batch_size, dist.world_size), eval_steps)

    def build_engine(self, device: str, total_steps: int, dist: Any, loaders: Loaders) -> Engine:
        from easyrec.restore import make_engine

        root = self.spec.root
        engine = make_engine(self.backend, self.spec.model, self.pipeline, root.trainer, device, total_steps, dist,
                             root.hardware.precision)
        self._engine = engine  # the delta exports' full exports
        loaders.train.stage, loaders.train.row_stager = engine.stager(), engine.row_stager
        if dist.kind == "tf" and dist.distributed:  # every worker runs the same steps (collectives)
            from trainer.tf_strategy import EqualStepsLoader

            loaders.train = EqualStepsLoader(loaders.train, engine)
        return engine

    def warm_start(self, engine: Engine, checkpoint: Path) -> dict[str, Any]:
        """Embedding rows remapped by value from the source run's vocabularies
        (easyrec.warm_start), the rest by name."""
        from easyrec.warm_start import warm_start

        return warm_start(engine, self.pipeline, checkpoint, self.spec.root.trainer)

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": self._plain_config(), "feature_state": self.pipeline.state_dict()}

    def recall_k(self) -> list[int] | None:
        return getattr(self.spec.model, "recall_k", None)

    def bad_rows(self, loaders: Loaders) -> dict[str, int]:
        return {"train": self._train_src.stats.get("bad_rows", 0),
                "eval": loaders.eval.source.stats.get("bad_rows", 0) if loaders.eval else 0}

    def close(self, loaders: Loaders) -> None:
        self._train_loader.close()

    def callbacks(self, run: RunDir) -> list[Any]:
        """Delta exports (trainer.export.delta_every_steps / _seconds): a base export at fit
        start, deltas on schedule; the final export is then labelled with the last step."""
        from easyrec.delta_format import check_delta_config, deltas_on

        root = self.spec.root
        if not (deltas_on(root.trainer.export) and root.trainer.export.enabled):
            return []
        check_delta_config(root.trainer)
        from easyrec.delta_writer import DeltaCallback, DeltaWriter

        def full(version: str) -> Path:
            return self.export(self.trained(self._engine), run, version=version)

        def ended(step: int) -> None:
            self.final_version = str(step)

        return [DeltaCallback(DeltaWriter(root.trainer.export, run.export, full), ended)]

    def trained(self, engine: Engine) -> Restored:
        return Restored(engine, self.pipeline, self.spec)

    def restore(self, checkpoint: Path) -> Restored:
        from easyrec.restore import restore

        restored = restore(checkpoint)
        return Restored(restored.engine, restored.state, self.spec, restored.meta)

    def evaluate(self, restored: Restored, path: str) -> tuple[dict[str, float], dict[str, Any]]:
        from trainer.loop import evaluate

        root = self.spec.root
        loader = make_loader(self.spec, restored.state, path, train=False)
        metrics = evaluate(restored.engine, loader, self.spec.task_types, root.trainer.limit_eval_batches,
                           self.recall_k(), show_progress=root.trainer.progress_bar)
        return metrics, {"bad_rows": loader.source.stats.get("bad_rows", 0)}

    def predict(self, restored: Restored, run: RunDir) -> Path:
        from easyrec.predict import predict_to_file

        return predict_to_file(self.spec, restored, run)

    def export(self, restored: Restored, run: RunDir, example: Any = None, version: str = "") -> Path:
        """The serving export; the example batch (for tracing) comes from the eval or train
        data, or is given (stream mode: rows of nulls). ``version`` (stream mode: the step)
        goes into meta.json, so ``lingjie serve`` following the re-exported directory in place
        reports which export answered."""
        spec, root, pipeline = self.spec, self.spec.root, restored.state
        version = version or self.final_version
        if example is None:
            src = make_source(spec, root.data.eval_path or root.data.train_path, pipeline, with_labels=False)
            example = pipeline.transform(next(iter(src.iter_batches(8))), with_labels=False)
        engine = restored.engine
        fmt = "saved_model" if engine.backend == "tf" else root.trainer.export.format
        out = engine.export(pipeline, example, run.export, fmt, spec.task_types,
                            {"experiment": root.experiment_name, "model": spec.model.name, "backend": engine.backend,
                             **({"version": version} if version else {})})
        log.info("exported %s program to %s", fmt, out)
        if version:  # a new base: deltas of older bases no longer apply
            from easyrec.delta_writer import remove_deltas

            remove_deltas(out, version)
        return out
