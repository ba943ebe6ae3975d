"""One Lingjie job: validate -> data -> features -> model -> train | evaluate | predict | export.

Heavy modules (torch, tensorflow, pyarrow, the model zoo) are imported only after the config
validated, and only the chosen backend's framework is imported at all.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes, atomic_write_json
from lingjie.errors import ConfigError
from trainer.run_dir import RunDir, resolve_checkpoint, resolve_resume_dir
from trainer.schema.validate import RunSpec, validate

log = logging.getLogger("lingjie")


def run_job(cfg: dict[str, Any], config_yaml: str) -> Path:
    """Run the job described by the resolved config ``cfg``; returns the run directory."""
    spec = validate(cfg)
    _setup_omp(spec)
    root = spec.root
    run = RunDir(root.paths.run_dir)
    mode = root.trainer.mode
    hw = root.hardware
    inside_worker = os.environ.get("LINGJIE_WORKER") == "1"
    if mode == "train" and hw.launcher == "k8s" and not inside_worker:
        from trainer.launch.k8s import render_and_maybe_submit

        return render_and_maybe_submit(spec, run, config_yaml)
    if mode == "train" and hw.launcher in ("torchrun", "tf_multiworker") and not inside_worker:
        return _launch(spec, run, config_yaml)
    from trainer.domains import domain_module

    module = domain_module(root.domain)
    if module is not None:  # cv / nlp: the domain runs train|evaluate|predict|export itself
        resumed = False
        if mode == "train":  # trainer.resume / an elastic restart: continue that run directory
            run, resumed = _resolve_run(spec, run)
        return module.run(spec, run, config_yaml, resumed)
    if mode == "train":
        return _train(spec, run, config_yaml)
    if mode == "stream":
        from easyrec.stream import run_stream

        return run_stream(spec, run, config_yaml)
    run.create()
    atomic_write_bytes(run.config, config_yaml.encode())
    ref = getattr(root.trainer, mode).checkpoint
    ckpt_path = resolve_checkpoint(ref, root.paths.output_root, root.experiment_name)
    log.info("%s with checkpoint %s", mode, ckpt_path)
    _setup_threads(spec)
    from easyrec.restore import restore

    restored = restore(ckpt_path)
    if mode == "evaluate":
        from trainer.loop import evaluate, format_metrics

        path = root.trainer.evaluate.data_path or root.data.eval_path
        loader = _loader(spec, restored.pipeline, path, train=False)
        metrics = evaluate(restored.engine, loader, spec.task_types, root.trainer.limit_eval_batches,
                           getattr(spec.model, "recall_k", None), show_progress=root.trainer.progress_bar)
        atomic_write_json(run.metrics, {"mode": "evaluate", "checkpoint": str(ckpt_path), "data": path,
                                        "bad_rows": loader.source.stats.get("bad_rows", 0), "final": metrics})
        log.info("evaluation: %s", format_metrics(metrics))
    elif mode == "predict":
        from easyrec.predict import predict_to_file

        out = predict_to_file(spec, restored, run)
        log.info("predictions written to %s", out)
    elif mode == "export":
        _export(spec, restored.engine, restored.pipeline, run)
    return run.root


def _resolve_run(spec: RunSpec, run: RunDir) -> tuple[RunDir, bool]:
    """The run directory to use and whether it is resumed (trainer.resume / elastic restart)."""
    root = spec.root
    resume = root.trainer.resume
    from trainer.distributed import DistContext

    if DistContext.from_env().restart_count > 0:
        resume = str(run.root)  # torchrun restarted the group: continue this run
    from dataio.remote_atomic import is_remote

    if isinstance(resume, str) and resume not in ("true", "True", "false", "False") and is_remote(resume):
        # a run mirrored to oss:// / hdfs:// (paths.remote_dir): pull it, then resume it locally
        from trainer.remote_mirror import pull_run

        local = RunDir(Path(root.paths.output_root) / root.experiment_name / resume.rstrip("/").rsplit("/", 1)[-1])
        if local.latest_checkpoint() is None:
            pull_run(resume, local, root.data.storage_options or None)
        resume = str(local.root)
    resume_dir = resolve_resume_dir(resume, root.paths.output_root, root.experiment_name, run.root)
    if resume_dir is not None and resume_dir.resolve() != run.root.resolve():
        # Hydra created a fresh (empty but for its log) directory for this invocation: drop it.
        _remove_fresh_dir(run.root)
        run = RunDir(resume_dir)
        log.info("resuming run %s", run.root)
    elif resume and resume_dir is None:
        log.warning("trainer.resume: no unfinished run of '%s' with a checkpoint; starting fresh", root.experiment_name)
    return run, resume_dir is not None


def _launch(spec: RunSpec, run: RunDir, config_yaml: str) -> Path:
    """Start the workers on the distributed engine the hardware profile names; wait for them."""
    root = spec.root
    hw = root.hardware
    run, resumed = _resolve_run(spec, run)
    run.create()
    atomic_write_bytes(run.config, config_yaml.encode())
    if hw.launcher == "torchrun":
        if root.trainer.backend != "torch":
            raise ConfigError("hardware.launcher", "torchrun launches torch workers; for trainer.backend=tf use "
                              "hardware=tf_multiworker")
        from trainer.launch.torchrun import launch_torchrun

        launch_torchrun(hw, run.root, run.config, resumed)
    else:
        if root.trainer.backend != "tf":
            raise ConfigError("hardware.launcher", "tf_multiworker launches TF workers; use trainer.backend=tf "
                              "(or hardware=ddp_cpu for torch)")
        from trainer.launch.tf_multiworker import launch_tf_workers

        launch_tf_workers(hw, run.root, run.config, resumed)
    if run.metrics.exists():
        from trainer.loop import format_metrics

        final = json.loads(run.metrics.read_text()).get("final", {})
        log.info("final: %s", format_metrics(final))
    return run.root


def _setup_omp(spec: RunSpec) -> None:
    """hardware.omp_wait_policy -> OMP_WAIT_POLICY, before torch loads OpenMP (it reads it once).

    Why: with spinning (libgomp's default) idle OpenMP threads busy-wait between the many small
    parallel regions of a step; on a CPU shared with other processes that spin steals the cores
    the other thread needs, and a 2-thread step ran ~20x slower here (benchmarks/RESULTS.md).
    Worker processes (torchrun, spawned loader workers) inherit the variable.
    """
    policy = spec.root.hardware.omp_wait_policy
    if policy == "auto":
        policy = "passive" if _oversubscribed(spec) else None
    if policy is None or spec.root.trainer.backend != "torch":
        return
    want = policy.upper()
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == want:
        return
    import sys

    if "torch" in sys.modules:
        log.info("hardware.omp_wait_policy=%s not applied: torch was imported before the job started "
                    "(set OMP_WAIT_POLICY=%s in the environment instead)", policy, want)
        return
    os.environ["OMP_WAIT_POLICY"] = want


def _oversubscribed(spec: RunSpec) -> bool:
    """Whether this job's own CPU processes x threads exceed the machine's cores (e.g. CPU DDP).

    Measured on 2 idle cores (benchmarks/RESULTS.md): spinning is ~45% faster for one process
    that owns the CPU, and ~20x slower when more threads than cores compete."""
    hw = spec.root.hardware
    if hw.device == "cuda":
        return False
    procs = hw.nproc_per_node if hw.launcher == "torchrun" else 1
    cores = os.cpu_count() or 1
    return procs * (hw.threads or cores) > cores


def _setup_threads(spec: RunSpec) -> None:
    threads = spec.root.hardware.threads
    if threads and spec.root.trainer.backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)


def _device(spec: RunSpec, dist: Any = None) -> str:
    hw = spec.root.hardware
    if spec.root.trainer.backend == "tf":
        return "cpu"  # TF places ops on the GPUs it sees by itself
    import torch

    if hw.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("hardware.device", "cuda requested but no CUDA device is available; use hardware=cpu")
    if hw.device == "cuda" or (hw.device == "auto" and torch.cuda.is_available()):
        local = dist.local_rank if dist is not None else 0
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def _seed_everything(seed: int, backend: str) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)


def _ensure_data(spec: RunSpec) -> None:
    if spec.root.data.dataset:
        from dataio.datasets import ensure_dataset

        ensure_dataset(spec.root.data.dataset, spec.root.paths.data_dir)


def _source(spec: RunSpec, path: str, pipeline: Any, with_labels: bool, extra_columns: list[str] | None = None,
            read_rows: int | None = None):
    """The table source of ``path``: files of any fsspec URL (local, oss://, hdfs://, webhdfs://)
    or a MaxCompute table (odps://), reading only the columns the features need."""
    data = spec.root.data
    columns = list(dict.fromkeys(pipeline.required_columns(with_labels=with_labels) + list(extra_columns or [])))
    required = [lab.column for lab in spec.labels.values()] if with_labels else []
    if str(path).startswith("kafka://"):
        raise ConfigError("data.train_path", "kafka:// is a stream: use trainer.mode=stream to train from it")
    if str(path).startswith("odps://"):
        from dataio.sources import open_source

        src = open_source(path, columns=columns, on_error=data.on_error, required_columns=required,
                          read_rows=read_rows or data.read_rows, storage_options=data.storage_options or None)
    else:
        from dataio.source import Source

        src = Source(path, format=data.format, columns=columns, on_error=data.on_error, required_columns=required,
                     csv_delimiter=data.csv.delimiter, csv_header=data.csv.header,
                     csv_column_names=data.csv.column_names, read_rows=read_rows or data.read_rows,
                     storage_options=data.storage_options or None)
    if hasattr(src, "check_columns"):
        src.check_columns(columns)
    return src


def _loader(spec: RunSpec, pipeline: Any, path: str, train: bool, with_labels: bool = True, dist: Any = None):
    from easyrec.loader import BatchLoader

    data = spec.root.data
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    read_rows = min(data.read_rows, data.eval_batch_size) if world > 1 else None
    src = _source(spec, path, pipeline, with_labels, read_rows=read_rows)
    limit = shard_limit(data.limit_train_rows if train else data.limit_eval_rows, src.read_rows, rank, world)
    return BatchLoader(src, pipeline, data.batch_size if train else data.eval_batch_size,
                       shuffle=train and data.shuffle, seed=spec.root.seed,
                       shuffle_buffer_rows=data.shuffle_buffer_rows, with_labels=with_labels,
                       limit_rows=limit, rank=rank, world_size=world)


def shard_limit(limit: int | None, chunk_rows: int, rank: int, world: int) -> int | None:
    """This rank's part of a global row limit: the rows of the first ``limit`` rows that lie in
    the chunks it owns (chunk k belongs to rank k % world), so the ranks together read exactly
    the rows one process would (exact for one file; the chunking restarts per file)."""
    if not limit or world == 1:
        return limit
    full, rest = divmod(limit, chunk_rows)
    owned_full = len(range(rank, full, world))
    return owned_full * chunk_rows + (rest if full % world == rank else 0)


def used_features(spec: RunSpec) -> dict[str, Any]:
    """Features referenced by the model's groups, plus those they share tables with."""
    names = {n for group in spec.model.feature_groups.values() for n in group}
    for n in list(names):
        share = getattr(spec.features[n], "share", None)
        if share:
            names.add(share)
    unused = [n for n in spec.features if n not in names]
    if unused:
        log.info("features not used by model %s: %s", spec.model.name, ", ".join(unused))
    return {n: f for n, f in spec.features.items() if n in names}


def make_pipeline(spec: RunSpec) -> Any:
    from easyrec.features.pipeline import FeaturePipeline

    return FeaturePipeline(used_features(spec), spec.labels, group_by=spec.root.data.group_by)


def _count_rows(src: Any, limit: int | None) -> int | None:
    """Row count from Parquet footers / table metadata (cheap); None where there is none."""
    total = src.count_rows() if hasattr(src, "count_rows") else None
    if total is None:
        return None
    return min(total, limit) if limit else total


def _steps(rows: int | None, batch_size: int) -> int | None:
    return -(-rows // batch_size) if rows else None


def start_training_process(spec: Any, run: RunDir, config_yaml: str) -> tuple[Any, str]:
    """What every training process of any domain does first: rank 0 creates the run directory
    and writes the config; then device, threads, the TF strategy, seeds and the torch process
    group. Returns (DistContext, device)."""
    from trainer.distributed import DistContext

    root = spec.root
    dist = DistContext.from_env()
    if dist.is_main:
        run.create()
        atomic_write_bytes(run.config, config_yaml.encode())
    device = _device(spec, dist)
    _setup_threads(spec)
    dist.init_tf()  # TF workers: MultiWorkerMirroredStrategy first, before any other TF op
    _seed_everything(root.seed, root.trainer.backend)
    if dist.kind == "torch":
        dist.init_torch(device.split(":")[0])
    return dist, device


def run_metrics(loop: Any, root: Any, model: str, backend: str, engine: Any, world_size: int,
                bad_rows: dict[str, int], final: bool, trial_reporter: Any = None, **extra: Any) -> dict[str, Any]:
    """The metrics.json body every domain writes (rec, easycv, easynlp): the run's identity, the
    loop's progress and history, bad rows, and whatever the domain adds in ``extra``."""
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
    if trial_reporter is not None:
        out["pruned"] = trial_reporter.pruned
    return out


def _train(spec: RunSpec, run: RunDir, config_yaml: str) -> Path:
    root = spec.root
    run, resumed = _resolve_run(spec, run)
    dist, device = start_training_process(spec, run, config_yaml)
    backend = root.trainer.backend
    if dist.is_main:
        _ensure_data(spec)
    dist.barrier()

    from easyrec.features.pipeline import FeaturePipeline
    from trainer.checkpoint_io import checkpoint_backend, read_meta
    from easyrec.loader import BatchLoader
    from trainer.loop import TrainLoop, format_metrics
    from easyrec.restore import make_engine

    ckpt_path = run.latest_checkpoint() if resumed else None
    if ckpt_path is not None and checkpoint_backend(ckpt_path) != backend:
        raise ConfigError("trainer.backend", f"the run to resume was trained with backend "
                          f"{checkpoint_backend(ckpt_path)}; resume it with trainer.backend={checkpoint_backend(ckpt_path)}")
    meta = read_meta(ckpt_path) if ckpt_path else None
    pipeline = make_pipeline(spec)
    data = root.data
    # distributed: small chunks so that round-robin chunk sharding gives every rank a fair share
    shard_rows = min(data.read_rows, 4 * data.batch_size) if dist.distributed else data.read_rows
    if dist.kind == "tf" and dist.distributed:
        # TF workers all run the steps of the shortest shard (collectives; see EqualStepsLoader):
        # one-batch chunks keep the shards within one batch of each other
        shard_rows = min(data.read_rows, data.batch_size)
    train_src = _source(spec, root.data.train_path, pipeline, with_labels=True, read_rows=shard_rows)
    if meta is not None:
        pipeline = FeaturePipeline.from_state_dict(meta["feature_state"])
    else:
        state = None
        if dist.is_main:  # rank 0 fits; every rank then uses the identical state
            t = time.perf_counter()
            fit_rows = root.data.fit_rows or root.data.limit_train_rows
            pipeline.fit(_source(spec, root.data.train_path, pipeline, with_labels=True)
                         .iter_batches(root.data.read_rows, limit_rows=fit_rows))
            log.info("fitted feature state on train in %.1fs", time.perf_counter() - t)
            state = pipeline.state_dict()
        if dist.distributed:
            pipeline = FeaturePipeline.from_state_dict(dist.all_gather_object(state)[0])
    if dist.is_main:
        pipeline.save(str(run.feature_state))

    limit = shard_limit(data.limit_train_rows, shard_rows, dist.rank, dist.world_size)
    lcfg = root.trainer.loader
    train_loader = BatchLoader(train_src, pipeline, data.batch_size, shuffle=data.shuffle, seed=root.seed,
                               shuffle_buffer_rows=data.shuffle_buffer_rows, limit_rows=limit,
                               rank=dist.rank, world_size=dist.world_size, prefetch=lcfg.prefetch,
                               transform_batches=lcfg.transform_batches, workers=lcfg.workers,
                               worker_type=lcfg.worker_type, cache=data.cache)
    eval_loader = _loader(spec, pipeline, data.eval_path, train=False, dist=dist) if data.eval_path else None
    train_rows = _count_rows(train_src, data.limit_train_rows)
    steps_per_epoch = _steps(-(-train_rows // dist.world_size) if train_rows else None, data.batch_size)
    eval_steps = _steps(_count_rows(eval_loader.source, data.limit_eval_rows), data.eval_batch_size) \
        if eval_loader else None
    total_steps = root.trainer.max_steps or (steps_per_epoch or 1000) * root.trainer.epochs

    engine = make_engine(backend, spec.model, pipeline, root.trainer, device, total_steps, dist,
                         root.hardware.precision)
    log.info("model %s on %s: %s parameters, tasks %s", spec.model.name, backend, f"{engine.num_parameters:,}",
             list(spec.task_types))
    train_loader.stage, train_loader.row_stager = engine.stager(), engine.row_stager
    if dist.kind == "tf" and dist.distributed:  # every worker runs the same steps (collectives)
        from easyrec.tf_backend.multiworker import EqualStepsLoader

        train_loader = EqualStepsLoader(train_loader, engine)
    writer = None
    if root.logger.tensorboard and dist.is_main:
        from trainer.tensorboard import EventWriter

        writer = EventWriter(run.tensorboard)
    extra = {"config": json.loads(json.dumps(_plain(spec))), "feature_state": pipeline.state_dict()}
    loop = TrainLoop(engine, root.trainer, train_loader, eval_loader, spec.task_types, run, steps_per_epoch,
                     extra, writer, getattr(spec.model, "recall_k", None), eval_steps, dist)
    if ckpt_path is not None:
        loop.resume_from(ckpt_path)
        log.info("resumed from %s (epoch %d, step %d)", ckpt_path.name, loop.progress.epoch + 1,
                 loop.progress.global_step)

    def write_metrics(final: bool) -> None:
        if not dist.is_main:
            return
        bad = {"train": train_src.stats.get("bad_rows", 0),
               "eval": eval_loader.source.stats.get("bad_rows", 0) if eval_loader else 0}
        atomic_write_json(run.metrics, run_metrics(loop, root, spec.model.name, backend, engine, dist.world_size,
                                                   bad, final, trial_reporter))

    mirror = None
    if root.paths.remote_dir and dist.is_main:
        from trainer.remote_mirror import RemoteMirror

        mirror = RemoteMirror(root.paths.remote_dir, run, data.storage_options or None)
        mirror.push_run_files()
        loop.on_checkpoint = mirror.push_checkpoint
        log.info("mirroring the run to %s", mirror.base)

    def epoch_end() -> None:
        write_metrics(False)
        if mirror is not None:
            mirror.push(run.metrics)

    loop.on_epoch_end = epoch_end
    # AutoML sweeps (issue 6): under the Optuna sweeper, report each epoch to the trial; prune
    from automl.reporting import attach_trial_reporter

    trial_reporter = attach_trial_reporter(loop)  # None unless $LINGJIE_OPTUNA_TRIAL is set
    try:
        loop.fit()
    finally:
        if writer is not None:
            writer.close()
        train_loader.close()
    write_metrics(True)
    dist.barrier()
    if dist.is_main:
        if root.trainer.export.enabled:
            best = [p for p in run.checkpoints.glob("best.*")]
            if best:
                engine.restore(best[0])
            _export(spec, engine, pipeline, run)
        atomic_write_bytes(run.done_marker, b"")
        if mirror is not None:
            for path in (run.metrics, run.export, run.done_marker):
                mirror.push(path)
        final = loop.progress.history[-1] if loop.progress.history else {}
        log.info("final: %s", format_metrics(final))
    dist.barrier()
    dist.shutdown()
    return run.root


def _export_stream(spec: RunSpec, engine: Any, pipeline: Any, run: RunDir) -> Path:
    """Export from a stream run: the example batch comes from the fitted pipeline's own inputs."""
    import pyarrow as pa

    example = pipeline.transform(pa.Table.from_pylist(_example_rows(pipeline)), with_labels=False)
    fmt = "saved_model" if engine.backend == "tf" else spec.root.trainer.export.format
    return engine.export(pipeline, example, run.export, fmt, spec.task_types,
                         {"experiment": spec.root.experiment_name, "model": spec.model.name,
                          "backend": engine.backend})


def _example_rows(pipeline: Any) -> list[dict[str, Any]]:
    """Two rows of nulls for every input column: enough for tracing an export."""
    return [{c: None for c in pipeline.required_columns(with_labels=False)} for _ in range(2)]


def _export(spec: RunSpec, engine: Any, pipeline: Any, run: RunDir) -> Path:
    root = spec.root
    path = root.data.eval_path or root.data.train_path
    src = _source(spec, path, pipeline, with_labels=False)
    example = pipeline.transform(next(iter(src.iter_batches(8))), with_labels=False)
    fmt = root.trainer.export.format
    if engine.backend == "tf":
        fmt = "saved_model"
    out = engine.export(pipeline, example, run.export, fmt, spec.task_types,
                        {"experiment": root.experiment_name, "model": spec.model.name, "backend": engine.backend})
    log.info("exported %s program to %s", fmt, out)
    return out


def _plain(spec: RunSpec) -> dict[str, Any]:
    from lingjie.schema import to_plain

    return {"root": to_plain(spec.root), "features": to_plain(spec.features), "labels": to_plain(spec.labels),
            "model": to_plain(spec.model)}


def _remove_fresh_dir(path: Path) -> None:
    """Remove a just-created run dir holding nothing but Hydra's log files."""
    if path.is_dir() and all(p.suffix == ".log" for p in path.iterdir()):
        shutil.rmtree(path, ignore_errors=True)
        parent = path.parent
        if parent.is_dir() and not any(parent.iterdir()):
            os.rmdir(parent)
