"""``domain: cv``: validate an easycv config and run it (train | evaluate | predict | export).

Shared with every Lingjie domain: the trainer/hardware/logger/paths groups, run_job's
launchers (torchrun workers re-enter here), the TrainLoop (epochs, checkpoints, early
stopping, resume, metrics.json history), the torch engine, the Optuna trial reporter and the
run-directory layout. easycv brings the image loader, the model zoo and the metrics.
Checkpoints carry the whole config plus the class names, channels and input size, so the
evaluate / predict / export modes rebuild everything from the checkpoint alone.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes, atomic_write_json
from easycv.schema import CVRunSpec, validate_root
from lingjie.errors import ConfigError
from trainer.run_dir import RunDir, resolve_checkpoint

log = logging.getLogger("lingjie")


def validate(cfg: dict[str, Any]) -> CVRunSpec:
    """Typed spec of a ``domain: cv`` config; ConfigError (path + fix) on any mistake."""
    return validate_root(cfg)


def run(spec: CVRunSpec, run: RunDir, config_yaml: str, resumed: bool) -> Path:
    """Run ``trainer.mode``; returns the run directory."""
    mode = spec.root.trainer.mode
    if mode == "train":
        return _train(spec, run, config_yaml, resumed)
    run.create()
    atomic_write_bytes(run.config, config_yaml.encode())
    from trainer.job import _setup_threads

    _setup_threads(spec)
    root = spec.root
    ckpt = resolve_checkpoint(getattr(root.trainer, mode).checkpoint, root.paths.output_root, root.experiment_name)
    log.info("%s with checkpoint %s", mode, ckpt)
    restored = restore(ckpt, spec)
    if mode == "evaluate":
        _evaluate(spec, restored, run, ckpt)
    elif mode == "predict":
        out = predict_to_json(spec, restored, run)
        log.info("predictions written to %s", out)
    else:
        out = export(restored, run.export)
        log.info("exported %s program to %s", restored.spec.root.trainer.export.format, out)
    return run.root


# ----------------------------------------------------------------------------- building blocks


def _records(spec: CVRunSpec, path: str, classes: list[str] | None, what: str, limit: int | None,
             labelled: bool = True) -> Any:
    from easycv.data.records import read_records

    d = spec.root.data
    return read_records(path, d.format, d.image_root, classes, d.storage_options, what, spec.detection,
                        labelled).head(limit)


def _loader(spec: CVRunSpec, records: Any, train: bool, channels: int | None = None, dist: Any = None) -> Any:
    from easycv.data.loader import ImageLoader, ImageSource
    from easycv.data.transforms import Pipeline

    d = spec.root.data
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    source = ImageSource(records, channels or d.channels, d.on_error, d.cache_images)
    return ImageLoader(source, Pipeline(spec.train_transforms if train else spec.eval_transforms),
                       d.batch_size if train else d.eval_batch_size, d.image_size, spec.detection,
                       shuffle=train and d.shuffle, seed=spec.root.seed, rank=rank, world_size=world,
                       prefetch=d.prefetch_batches, augment=train)


def _metrics(spec: CVRunSpec, num_classes: int) -> Any:
    from easycv.metrics import ClassificationMetrics, DetectionMetrics

    if spec.detection:
        return DetectionMetrics(spec.task_types, num_classes)
    return ClassificationMetrics(spec.task_types)


def _extra_meta(spec: CVRunSpec, classes: list[str]) -> dict[str, Any]:
    """What makes a checkpoint self-contained: the config, class names, channels, input size."""
    from lingjie.schema import to_plain

    d = spec.root.data
    return {"config": json.loads(json.dumps(to_plain(spec.root))), "classes": list(classes),
            "channels": d.channels, "image_size": d.image_size, "task": spec.model.task}


def _check_classes(found: list[str], classes: list[str], path: str) -> None:
    if found != classes:
        raise ConfigError("data.eval_path", f"the classes of {path} ({', '.join(found[:10])}) differ from the "
                          f"training classes ({', '.join(classes[:10])}); set data.classes")


# ----------------------------------------------------------------------------- train


def _train(spec: CVRunSpec, run: RunDir, config_yaml: str, resumed: bool) -> Path:
    import torch

    from automl.reporting import attach_trial_reporter
    from easycv.engine import CVEngine
    from easycv.models import build_model
    from trainer.checkpoint_io import read_meta
    from trainer.job import _ensure_data, run_metrics, start_training_process
    from trainer.loop import TrainLoop, format_metrics

    root, data = spec.root, spec.root.data
    dist, device = start_training_process(spec, run, config_yaml)
    if dist.is_main:
        _ensure_data(spec)
    dist.barrier()

    ckpt_path = run.latest_checkpoint() if resumed else None
    meta = read_meta(ckpt_path) if ckpt_path else None
    train_records = _records(spec, data.train_path, meta["classes"] if meta else data.classes, "data.train_path",
                             data.limit_train_rows)
    classes = meta["classes"] if meta else train_records.classes
    if not classes:
        raise ConfigError("data.classes", f"no classes found in {data.train_path}; list them in data.classes")
    eval_loader = None
    if data.eval_path:
        eval_records = _records(spec, data.eval_path, classes, "data.eval_path", data.limit_eval_rows)
        _check_classes(eval_records.classes, classes, data.eval_path)
        eval_loader = _loader(spec, eval_records, train=False, dist=dist)
    train_loader = _loader(spec, train_records, train=True, dist=dist)
    steps_per_epoch = train_loader.num_batches()
    total_steps = root.trainer.max_steps or steps_per_epoch * root.trainer.epochs

    model = build_model(spec.model, len(classes), data.channels)
    engine = CVEngine(model, root.trainer, torch.device(device), total_steps, dist, root.hardware.precision,
                      spec.model.ema)
    log.info("model %s: %s parameters, %d classes, %d train / %d eval images", spec.model.name,
             f"{engine.num_parameters:,}", len(classes), len(train_records),
             len(eval_loader.source) if eval_loader else 0)
    writer = None
    if root.logger.tensorboard and dist.is_main:
        from trainer.tensorboard import EventWriter

        writer = EventWriter(run.tensorboard)
    loop = TrainLoop(engine, root.trainer, train_loader, eval_loader, spec.task_types, run, steps_per_epoch,
                     _extra_meta(spec, classes), writer, None,
                     eval_loader.num_batches() if eval_loader else None, dist, metrics=_metrics(spec, len(classes)))
    if ckpt_path is not None:
        loop.resume_from(ckpt_path)
        log.info("resumed from %s (epoch %d, step %d)", ckpt_path.name, loop.progress.epoch + 1,
                 loop.progress.global_step)

    def write_metrics(final: bool) -> None:
        if not dist.is_main:
            return
        bad = {"train": train_loader.source.stats["bad_rows"],
               "eval": eval_loader.source.stats["bad_rows"] if eval_loader else 0}
        bad_files = train_loader.source.stats["bad_files"] + (eval_loader.source.stats["bad_files"] if eval_loader
                                                              else [])
        atomic_write_json(run.metrics, run_metrics(loop, root, spec.model.name, "torch", engine, dist.world_size,
                                                   bad, final, trial_reporter, domain="cv", bad_files=bad_files))

    loop.on_epoch_end = lambda: write_metrics(False)
    trial_reporter = attach_trial_reporter(loop)  # None unless run by the Optuna sweeper
    try:
        loop.fit()
    finally:
        if writer is not None:
            writer.close()
    write_metrics(True)
    dist.barrier()
    if dist.is_main:
        if root.trainer.export.enabled:
            best = run.checkpoints / "best.pt"
            if best.exists():
                engine.restore(best)
            restored = Restored(spec, engine, classes, data.channels)
            out = export(restored, run.export)
            log.info("exported %s program to %s", root.trainer.export.format, out)
        atomic_write_bytes(run.done_marker, b"")
        final = loop.progress.history[-1] if loop.progress.history else {}
        log.info("final: %s", format_metrics(final))
    dist.barrier()
    dist.shutdown()
    return run.root


# ----------------------------------------------------------------------------- from a checkpoint


class Restored:
    """A model rebuilt from a checkpoint, with the spec it was trained with."""

    def __init__(self, spec: CVRunSpec, engine: Any, classes: list[str], channels: int) -> None:
        self.spec = spec
        self.engine = engine
        self.classes = classes
        self.channels = channels


def restore(ckpt: Path, current: CVRunSpec) -> Restored:
    """Engine + the checkpoint's own spec (model, transforms, classes); the current config's
    trainer/hardware/paths/data paths still apply (where to read, where to write)."""
    import torch

    from easycv.engine import CVEngine
    from easycv.models import build_model
    from trainer.checkpoint_io import read_checkpoint
    from lingjie.errors import DataError

    state = read_checkpoint(ckpt)
    meta = state["meta"]
    if meta.get("task") not in ("classification", "detection") or "config" not in meta:
        raise DataError("not an easycv checkpoint (no classes / task in its meta)", file=str(ckpt))
    saved = validate_root({**meta["config"], "trainer": {**meta["config"]["trainer"], "mode": "evaluate"}})
    spec = CVRunSpec(root=current.root, model=saved.model, train_transforms=saved.train_transforms,
                     eval_transforms=saved.eval_transforms)
    spec.root.data.image_size = meta["image_size"]
    spec.root.data.channels = meta["channels"]
    model = build_model(saved.model, len(meta["classes"]), meta["channels"])
    from trainer.job import _device

    engine = CVEngine(model, None, torch.device(_device(current)), precision=current.root.hardware.precision,
                      ema=None)
    weights = state["ema"]["model"] if state.get("ema") else state["model"]
    engine.model.load_state_dict(weights)
    return Restored(spec, engine, list(meta["classes"]), meta["channels"])


def _evaluate(spec: CVRunSpec, r: Restored, run: RunDir, ckpt: Path) -> None:
    from trainer.loop import evaluate, format_metrics

    root = spec.root
    path = root.trainer.evaluate.data_path or root.data.eval_path
    if not path:
        raise ConfigError("trainer.evaluate.data_path", "nothing to evaluate: set it or data.eval_path")
    records = _records(r.spec, path, r.classes, "trainer.evaluate.data_path", root.data.limit_eval_rows)
    _check_classes(records.classes, r.classes, path)
    loader = _loader(r.spec, records, train=False, channels=r.channels)
    metrics = evaluate(r.engine, loader, r.spec.task_types, root.trainer.limit_eval_batches,
                       show_progress=root.trainer.progress_bar, total=loader.num_batches(),
                       metrics=_metrics(r.spec, len(r.classes)))
    atomic_write_json(run.metrics, {"mode": "evaluate", "domain": "cv", "checkpoint": str(ckpt), "data": path,
                                    "bad_rows": loader.source.stats["bad_rows"], "final": metrics})
    log.info("evaluation: %s", format_metrics(metrics))


def predict_to_json(spec: CVRunSpec, r: Restored, run: RunDir) -> Path:
    """Predictions of every input image as JSON: classification ``label`` / ``score`` / ``top5``;
    detection ``boxes`` (x1, y1, x2, y2 in the original image's pixels), ``scores``, ``labels``."""
    import numpy as np

    root = spec.root
    path = root.trainer.predict.input_path or root.data.eval_path
    if not path:
        raise ConfigError("trainer.predict.input_path", "no images to predict: set it or data.eval_path")
    records = _records(r.spec, path, r.classes, "trainer.predict.input_path", root.data.limit_eval_rows,
                       labelled=False)
    loader = _loader(r.spec, records, train=False, channels=r.channels)
    rows: list[dict[str, Any]] = []
    for _, batch in loader.epoch(0):
        preds = r.engine.predict(batch)
        for i, f in enumerate(batch.files):
            if r.spec.detection:
                det = np.asarray(preds["boxes"][i], np.float64).reshape(-1, 6)
                sx, sy, tx, ty = (float(v) for v in batch.affines[i])
                h, w = (int(v) for v in batch.orig_sizes[i])
                boxes = det[:, :4].copy()
                boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - tx) / sx).clip(0, w)
                boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - ty) / sy).clip(0, h)
                rows.append({"file": f, "boxes": np.round(boxes, 2).tolist(),
                             "scores": np.round(det[:, 4], 5).tolist(),
                             "labels": [r.classes[int(c)] for c in det[:, 5]]})
            else:
                p = np.asarray(preds["label"][i], np.float64)
                top = np.argsort(-p, kind="stable")[:5]
                rows.append({"file": f, "label": r.classes[int(top[0])], "score": round(float(p[top[0]]), 6),
                             "top5": [{"label": r.classes[int(k)], "score": round(float(p[k]), 6)} for k in top]})
    out = Path(root.trainer.predict.output_path or run.root / "predictions.json")
    atomic_write_json(out, {"task": r.spec.model.task, "checkpoint_classes": r.classes,
                            "bad_files": loader.source.stats["bad_files"], "predictions": rows})
    return out


def export(r: Restored, out_dir: Path) -> Path:
    """The TorchScript / torch.export program of the (EMA) model and a meta.json describing it."""
    import torch

    spec, d = r.spec, r.spec.root.data
    from easycv.data.transforms import Pipeline

    fmt = spec.root.trainer.export.format
    example = torch.rand(2, r.channels, d.image_size, d.image_size, generator=torch.Generator().manual_seed(0))
    norm = Pipeline(spec.eval_transforms).normalize
    preprocess = [t.__dict__ for t in spec.eval_transforms if t.name != "normalize"]
    meta: dict[str, Any] = {
        "task": spec.model.task, "experiment": spec.root.experiment_name, "model": spec.model.name,
        "classes": r.classes,
        "input": {"name": "images", "shape": ["batch", r.channels, d.image_size, d.image_size],
                  "dtype": "float32", "range": [0.0, 1.0], "preprocess": preprocess,
                  "normalize": norm.__dict__ if norm is not None else None, "normalize_inside": True},
    }
    if spec.detection:
        m = spec.model
        meta["outputs"] = {"boxes": "[batch, points, 4] x1 y1 x2 y2 in input pixels",
                           "scores": "[batch, points, classes] objectness * class probability"}
        meta["postprocess"] = {"score_thresh": m.score_thresh, "nms_iou": m.nms_iou,
                               "max_detections": m.max_detections, "nms": "class-wise (easycv.models.ops)"}
    else:
        meta["outputs"] = {"label": "[batch, classes] class probabilities"}
    return r.engine.export_cv(out_dir, fmt, example, norm, r.channels, meta)
