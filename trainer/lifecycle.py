"""The one training lifecycle: what every domain's train / evaluate / predict / export run does.

A domain implements :class:`Recipe` — fit its state (feature pipeline, tokenizer, classes),
build loaders and an engine, say what a checkpoint carries, bring its metrics, export, and
rebuild a model from a checkpoint — and :func:`train` / :func:`run_checkpoint_mode` run it:

    run directory + config -> device, threads, seeds, process group -> data (rank 0) -> barrier
    -> state (fitted on rank 0 and shared, or restored from the checkpoint being resumed)
    -> loaders -> engine -> TrainLoop with callbacks (metrics.json, the logger group's trackers,
    remote mirror,
    the user's and the environment's) -> resume -> fit -> final metrics -> best checkpoint
    -> export -> DONE -> barrier -> shutdown

so resume, metrics.json, pruning, mirroring and export work the same for every domain.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes, atomic_write_json
from lingjie.errors import ConfigError
from lingjie.faults import fault_point
from trainer.callbacks import Callback, MetricsFile, instantiate_callbacks
from trainer.config_diff import config_differences, describe_differences, merge_sections
from trainer.engine import Engine
from trainer.metric_report import TaskMetrics
from trainer.publish import publish_if_asked
from trainer.process import setup_threads, start_training_process, write_config
from trainer.run_dir import RunDir, resolve_checkpoint
from trainer.run_summary import log_summary, write_run_plots
from trainer.tracking import tracking_callbacks
from trainer.redaction import meta_at_rest

log = logging.getLogger("lingjie")


@dataclass
class Loaders:
    """The train and eval loaders of one rank and how many batches each has (None: unknown)."""

    train: Any
    eval: Any = None
    steps_per_epoch: int | None = None
    eval_steps: int | None = None


@dataclass
class Restored:
    """A model rebuilt from a checkpoint (or the model just trained): its engine, the domain's
    fitted state (feature pipeline, tokenizer + labels, classes) and the training-time spec
    with this run's paths."""

    engine: Engine
    state: Any
    spec: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Recipe(ABC):
    """A domain's part of the lifecycle. ``spec.root`` holds the shared groups (trainer,
    hardware, logger, paths, data); ``spec.model.name`` names the model."""

    domain: str = ""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    @property
    def backend(self) -> str:
        return self.spec.root.trainer.backend

    # ----- training
    def prepare_data(self) -> None:
        """Rank 0, before the barrier: prepare bundled data (and anything else to download once)."""
        from trainer.process import ensure_data

        ensure_data(self.spec)

    def check_resume(self, checkpoint: Path) -> None:
        """Raise a ConfigError when ``checkpoint`` cannot be resumed with this config: any
        model-shaping key (:meth:`model_config_keys`) differs. Why refuse rather than pick one:
        training on at the checkpoint's shape while the command says another trains something
        the user did not ask for; building the new shape cannot load the weights."""
        from trainer.checkpoint_io import read_meta

        meta = read_meta(checkpoint)
        now, saved = self.config_view(None), self.config_view(meta)
        keys = config_differences(now, saved, self.model_config_keys())
        if keys:
            was, says = describe_differences(now, saved, keys)
            raise ConfigError("trainer.resume", f"the run was trained with {was}; this command says {says} "
                              "-- drop these overrides or start a new run")

    def model_config_keys(self) -> list[str]:
        """Dotted config sections that shape the model: a checkpoint fits only its own values
        of these (the domain adds e.g. its features or input size)."""
        return ["model"]

    def config_view(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        """The config shaped like the root config (``model``, ``data``, ...) as a checkpoint's
        ``meta`` stores it, or (None) this run's in the same plain form, for comparing them."""
        import json

        from lingjie.schema import to_plain

        if meta is not None:
            return meta.get("config", {})
        return json.loads(json.dumps(to_plain(self.spec.root)))

    @abstractmethod
    def fit_state(self, meta: dict[str, Any] | None, dist: Any, run: RunDir) -> None:
        """Fit the domain's state on rank 0 and share it with every rank, or restore it from
        ``meta`` (the checkpoint being resumed); rank 0 may save it into ``run``."""

    def extend_state(self, meta: dict[str, Any], dist: Any, run: RunDir) -> None:
        """``trainer.features_from=extend`` (after :meth:`fit_state` fitted this run's data):
        merge the warm-start source's state (``meta``) in. Default: keep this run's fit (a
        domain whose fitted state shapes the model's tables overrides it: rec vocabularies)."""

    @abstractmethod
    def loaders(self, dist: Any) -> Loaders:
        """This rank's loaders over the train and eval splits."""

    @abstractmethod
    def build_engine(self, device: str, total_steps: int, dist: Any, loaders: Loaders) -> Engine:
        """A fresh model on its engine (optimizers, schedulers, precision) for training."""

    @abstractmethod
    def checkpoint_meta(self) -> dict[str, Any]:
        """What makes a checkpoint self-contained: the config and the fitted state (JSON-able)."""

    def warm_start(self, engine: Engine, checkpoint: Path) -> dict[str, Any]:
        """``trainer.init_from``: load ``checkpoint``'s weights into the fresh ``engine`` (by
        name, with a shape check: :mod:`trainer.warm_start`); returns what metrics.json reports.
        A domain whose tables depend on its fitted state (rec: vocabularies) overrides it."""
        from trainer.warm_start import warm_start_by_name

        return warm_start_by_name(engine, self.restore(checkpoint).engine, self.spec.root.trainer, checkpoint)

    def task_metrics(self) -> TaskMetrics:
        """How predictions become metrics (default: binary / regression tasks)."""
        return TaskMetrics(self.spec.task_types)

    def recall_k(self) -> list[int] | None:
        """In-batch recall@k cut-offs of retrieval models (None: not a retrieval model)."""
        return None

    def bad_rows(self, loaders: Loaders) -> dict[str, int]:
        """Rows skipped (data.on_error=skip) per split, for metrics.json."""
        def count(loader: Any) -> int:
            return loader.source.stats.get("bad_rows", 0) if loader is not None else 0
        return {"train": count(loaders.train), "eval": count(loaders.eval)}

    def metrics_extra(self, loop: Any, loaders: Loaders, final: bool) -> dict[str, Any]:
        """Domain keys added to metrics.json (e.g. token counts, bad files)."""
        return {}

    def callbacks(self, run: RunDir) -> list[Callback]:
        """The domain's own callbacks (rank 0), after the trackers and before the user's
        (e.g. the rec domain's delta exports)."""
        return []

    def after_fit(self, loop: Any, loaders: Loaders, dist: Any) -> None:
        """Every rank, after a fit that ended normally (collectives allowed: e.g. sum counters
        over the ranks)."""

    def close(self, loaders: Loaders) -> None:
        """Every rank, after the fit, also when it raised (e.g. stop loader worker pools)."""

    def load_best(self, engine: Engine, path: Path) -> None:
        """Load the best checkpoint's weights before the export."""
        engine.restore(path)

    @abstractmethod
    def trained(self, engine: Engine) -> Restored:
        """The model just trained, as :meth:`restore` would rebuild it (for the export)."""

    # ----- from a checkpoint
    @abstractmethod
    def restore(self, checkpoint: Path) -> Restored:
        """Engine (no optimizers), fitted state and the training-time spec from a checkpoint;
        data paths, batching and output paths come from this run's config."""

    @abstractmethod
    def evaluate(self, restored: Restored, path: str) -> tuple[dict[str, float], dict[str, Any]]:
        """Metrics over ``path`` and what metrics.json adds (e.g. ``{"bad_rows": n}``)."""

    @abstractmethod
    def predict(self, restored: Restored, run: RunDir) -> Path:
        """Write the predictions of trainer.predict.input_path; returns the file."""

    @abstractmethod
    def export(self, restored: Restored, run: RunDir) -> Path:
        """Write a self-contained serving export into ``run.export``; returns it."""


def batches_per_epoch(rows: int | None, batch_size: int, world_size: int = 1) -> int | None:
    """Batches one rank trains per epoch when ``rows`` are sharded over ``world_size`` ranks
    (None when the row count is unknown): sizes the progress bar and the LR schedule."""
    return -(-(-(-rows // world_size)) // batch_size) if rows else None


def run_metrics(loop: Any, root: Any, model: str, backend: str, engine: Any, world_size: int,
                bad_rows: dict[str, int], final: bool, **extra: Any) -> dict[str, Any]:
    """The metrics.json body every domain writes: the run's identity, the loop's progress and
    history, bad rows, what callbacks added (``loop.summary``) and the domain's ``extra``."""
    p = loop.progress
    out = {
        "experiment": root.experiment_name,
        "model": model,
        "backend": backend,
        "world_size": world_size,
        "parameters": engine.num_parameters,
        "steps": p.global_step,
        "epochs_completed": p.epoch,
        "stopped_early": p.stopped_early,
        "train_samples_per_sec": p.train_samples / p.train_time if p.train_time else 0.0,
        "bad_rows": bad_rows,
        "history": p.history,
        "final": p.history[-1] if p.history else {},
        "best": {"metric": root.trainer.early_stopping.metric, "value": p.best},
        "finished": final,
        **extra,
    }
    if getattr(loop, "critical_path", None) is not None:
        out["critical_path"] = loop.critical_path
    out.update(getattr(loop, "summary", {}))
    return out


def _callbacks(recipe: Recipe, run: RunDir, metrics_file: MetricsFile) -> list[Callback]:
    """metrics.json, the trackers (trainer.tracking: TensorBoard, metrics.csv, MLflow) and the
    remote mirror, then the user's and the environment's."""
    root = recipe.spec.root
    callbacks: list[Callback] = [metrics_file, *tracking_callbacks(root, run)]
    if root.paths.remote_dir:
        from trainer.remote_mirror import MirrorCallback

        callbacks.append(MirrorCallback(root.paths.remote_dir, run, root.data.storage_options or None))
    return callbacks + recipe.callbacks(run) + instantiate_callbacks(root.trainer.callbacks)


def _state_and_loaders(recipe: Recipe, run: RunDir, dist: Any, resumed: bool) -> tuple[Path | None, Path | None, Loaders]:
    """The checkpoint to resume (if any), the warm-start source (trainer.init_from, when not
    resuming), the fitted or restored state, and the loaders."""
    from trainer.checkpoint_io import read_meta

    ckpt = run.latest_checkpoint() if resumed else None
    source = None
    if dist.is_main:
        recipe.prepare_data()
        source = init_source(recipe, run) if ckpt is None else None
    if dist.distributed:
        source = dist.all_gather_object(source)[0]
    dist.barrier()
    meta = read_meta(ckpt) if ckpt is not None else None
    how = recipe.spec.root.trainer.features_from
    if source is not None and how == "init":
        meta = read_meta(source)
        log.info("feature state from the init_from run (trainer.features_from=init)")
    recipe.fit_state(meta, dist, run)
    if source is not None and how == "extend":
        recipe.extend_state(read_meta(source), dist, run)
    return ckpt, source, recipe.loaders(dist)


def init_source(recipe: Recipe, run: RunDir) -> Path | None:
    """The checkpoint trainer.init_from names (None: not set); torch checkpoints only."""
    from trainer.checkpoint_io import checkpoint_backend
    from trainer.warm_start import resolve_init_source

    root = recipe.spec.root
    if not root.trainer.init_from:
        return None
    if recipe.backend != "torch":
        raise ConfigError("trainer.init_from", "warm starts load torch checkpoints; use trainer.backend=torch "
                          "(a TF run continues only with trainer.resume)")
    source = resolve_init_source(str(root.trainer.init_from), root.paths.output_root, root.experiment_name, run.root)
    if checkpoint_backend(source) != "torch":
        raise ConfigError("trainer.init_from", f"{source} is a TF checkpoint; warm starts load torch (.pt) checkpoints")
    log.info("warm start from %s (trainer.init_from)", source)
    return source


def _make_loop(recipe: Recipe, run: RunDir, dist: Any, device: str,
               loaders: Loaders) -> tuple[Any, MetricsFile]:
    """The engine and the TrainLoop around it, with every callback attached; the metrics.json
    writer is returned too (the lifecycle writes the final metrics after the fit)."""
    from trainer.loop import TrainLoop

    root, spec = recipe.spec.root, recipe.spec
    total_steps = root.trainer.max_steps or (loaders.steps_per_epoch or 1000) * root.trainer.epochs
    engine = recipe.build_engine(device, total_steps, dist, loaders)
    log.info("model %s on %s: %s parameters, tasks %s", spec.model.name, recipe.backend,
             f"{engine.num_parameters:,}", list(spec.task_types))
    loop: Any = None

    def body(final: bool) -> dict[str, Any]:
        return run_metrics(loop, root, spec.model.name, recipe.backend, engine, dist.world_size,
                           recipe.bad_rows(loaders), final, **recipe.metrics_extra(loop, loaders, final))

    metrics_file = MetricsFile(run.metrics, body)
    loop = TrainLoop(engine, root.trainer, loaders.train, loaders.eval, spec.task_types, run,
                     loaders.steps_per_epoch, meta_at_rest(recipe.checkpoint_meta()), _callbacks(recipe, run, metrics_file),
                     recipe.recall_k(), loaders.eval_steps, dist, recipe.task_metrics())
    return loop, metrics_file


def check_resumable(recipe: Recipe, run: RunDir, resumed: bool) -> None:
    """Before anything is written: refuse to resume ``run`` when its latest checkpoint does
    not fit this config (:meth:`Recipe.check_resume`). The job calls it before the run is
    marked FAILED on errors: a refused command leaves the run it names as it was."""
    ckpt = run.latest_checkpoint() if resumed else None
    if ckpt is not None:
        recipe.check_resume(ckpt)


def train(recipe: Recipe, run: RunDir, config_yaml: str, resumed: bool) -> Path:
    """trainer.mode=train for any domain: see the module docstring; returns the run directory.
    Call :func:`check_resumable` first; a resumed run keeps its config.yaml."""
    dist, device = start_training_process(recipe.spec, run, config_yaml, resumed)
    ckpt, source, loaders = _state_and_loaders(recipe, run, dist, resumed)
    loop, metrics_file = _make_loop(recipe, run, dist, device, loaders)
    if source is not None:
        loop.summary["init_from"] = recipe.warm_start(loop.engine, source)
    if ckpt is not None:
        loop.resume_from(ckpt)
        log.info("resumed from %s (epoch %d, step %d)", ckpt.name, loop.progress.epoch + 1,
                 loop.progress.global_step)
    try:
        _fit_and_finish(recipe, run, dist, loop, loaders, metrics_file)
    except BaseException as exc:  # trackers mark their run failed (KeyboardInterrupt: killed)
        loop.notify_run_failed(exc)
        raise
    dist.barrier()
    dist.shutdown()
    return run.root


def _fit_and_finish(recipe: Recipe, run: RunDir, dist: Any, loop: Any, loaders: Loaders,
                    metrics_file: MetricsFile) -> None:
    """The fit, the final metrics.json, the export of the best checkpoint and DONE."""
    from trainer.loop import format_metrics

    try:
        loop.fit()
    finally:
        recipe.close(loaders)
    recipe.after_fit(loop, loaders, dist)
    if dist.is_main:
        metrics_file.write(True)
        write_run_plots(loop, loop.metrics, run.root / "plots")
    dist.barrier()
    if dist.is_main:
        if recipe.spec.root.trainer.export.enabled:
            best = sorted(run.checkpoints.glob("best.*"))
            if best:
                recipe.load_best(loop.engine, best[0])
            recipe.export(recipe.trained(loop.engine), run)
            fault_point("export")
            publish_if_asked(recipe.spec.root, run.root, run.export)  # trainer.export.repository
        atomic_write_bytes(run.done_marker, b"")
        loop.notify_run_end()
        final = loop.progress.history[-1] if loop.progress.history else {}
        log.info("final: %s", format_metrics(final))
        log_summary(loop.progress.history, recipe.spec.root.trainer.early_stopping)


def run_checkpoint_mode(recipe: Recipe, run: RunDir, config_yaml: str) -> Path:
    """trainer.mode evaluate | predict | export: rebuild the model from a checkpoint and use it."""
    from trainer.loop import format_metrics

    root = recipe.spec.root
    mode = root.trainer.mode
    setup_threads(recipe.spec)
    ckpt = resolve_checkpoint(getattr(root.trainer, mode).checkpoint, root.paths.output_root, root.experiment_name)
    log.info("%s with checkpoint %s", mode, ckpt)
    now = recipe.config_view(None)  # before restore: a recipe may write the checkpoint's values into its spec
    restored = recipe.restore(ckpt)
    write_config(run, config_used(recipe, now, restored.meta or _meta(ckpt), config_yaml))
    if mode == "evaluate":
        path = root.trainer.evaluate.data_path or root.data.eval_path
        if not path:
            raise ConfigError("trainer.evaluate.data_path", "nothing to evaluate: set it or data.eval_path")
        metrics, extra = recipe.evaluate(restored, path)
        body = {"mode": "evaluate", **({"domain": recipe.domain} if recipe.domain != "rec" else {}),
                "checkpoint": str(ckpt), "data": path, **extra, "final": metrics}
        atomic_write_json(run.metrics, body)
        log.info("evaluation: %s", format_metrics(metrics))
    elif mode == "predict":
        log.info("predictions written to %s", recipe.predict(restored, run))
    elif mode == "export":
        recipe.export(restored, run)  # the recipe logs what it wrote
    else:
        raise ConfigError("trainer.mode", f"{mode} is not a mode of domain {recipe.domain!r}")
    return run.root


def _meta(ckpt: Path) -> dict[str, Any]:
    from trainer.checkpoint_io import read_meta

    return read_meta(ckpt)


def config_used(recipe: Recipe, now: dict[str, Any], meta: dict[str, Any], config_yaml: str) -> str:
    """The config evaluate / predict / export really ran with: the checkpoint's model-shaping
    sections merged over the command line's (a WARNING names the keys that differ). Why: the
    model comes from the checkpoint; a config.yaml claiming the command line's model would lie."""
    from omegaconf import OmegaConf

    keys = recipe.model_config_keys()
    try:
        saved = recipe.config_view(meta)
    except (KeyError, TypeError, AttributeError):  # an old or foreign checkpoint: nothing to compare
        return config_yaml
    differing = config_differences(now, saved, keys)
    if not differing:
        return config_yaml
    was, says = describe_differences(now, saved, differing)
    log.warning("the checkpoint was trained with %s; this command says %s: using the checkpoint's "
                "config (%s); config.yaml records it", was, says, ", ".join(keys))
    used = OmegaConf.to_container(OmegaConf.create(config_yaml), resolve=False)
    return OmegaConf.to_yaml(OmegaConf.create(merge_sections(used, saved, keys)))
