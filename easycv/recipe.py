"""The image domain's part of the training lifecycle (trainer.lifecycle.Recipe).

Its state is :class:`CVState`: the class names (found in the train records, or given by
``data.classes``, or read from the checkpoint being resumed) and the image channels. Every rank
reads the train records itself, so every rank finds the same classes. Checkpoints carry the
whole config plus the class names, channels, input size and task, so the evaluate / predict /
export modes rebuild everything from the checkpoint alone.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_json
from easycv.schema import CVRunSpec, validate_root
from lingjie.errors import ConfigError
from trainer.engine import Engine
from trainer.lifecycle import Loaders, Recipe, Restored
from trainer.metric_report import TaskMetrics
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie")


@dataclass
class CVState:
    """What a cv model needs besides its weights: the class names and the image channels."""

    classes: list[str]
    channels: int


class CVRecipe(Recipe):
    """Image records -> ImageLoader (transforms, augmentation) -> model-zoo entry on CVEngine."""

    domain = "cv"

    def __init__(self, spec: CVRunSpec) -> None:
        super().__init__(spec)
        self.classes: list[str] = []
        self._train_records: Any = None

    # ----- training
    def model_config_keys(self) -> list[str]:
        """The model and what sizes its input and output: image size, channels, classes.
        (The inherited :meth:`Recipe.check_resume` refuses a resume that changes them.)"""
        return ["model", "data.image_size", "data.channels", "data.classes"]

    def fit_state(self, meta: dict[str, Any] | None, dist: Any, run: RunDir) -> None:
        data = self.spec.root.data
        known = meta["classes"] if meta else data.classes
        self._train_records = _records(self.spec, data.train_path, known, "data.train_path", data.limit_train_rows)
        classes = meta["classes"] if meta else self._train_records.classes
        if not classes:
            raise ConfigError("data.classes", f"no classes found in {data.train_path}; list them in data.classes")
        self.classes = list(classes)

    def loaders(self, dist: Any) -> Loaders:
        data = self.spec.root.data
        eval_loader = None
        if data.eval_path:
            records = _records(self.spec, data.eval_path, self.classes, "data.eval_path", data.limit_eval_rows)
            _check_classes(records.classes, self.classes, data.eval_path)
            eval_loader = _loader(self.spec, records, train=False, dist=dist)
        train_loader = _loader(self.spec, self._train_records, train=True, dist=dist)
        log.info("%d classes, %d train / %d eval images", len(self.classes), len(self._train_records),
                 len(eval_loader.source) if eval_loader else 0)
        return Loaders(train_loader, eval_loader, train_loader.num_batches(),
                       eval_loader.num_batches() if eval_loader else None)

    def build_engine(self, device: str, total_steps: int, dist: Any, loaders: Loaders) -> Engine:
        import torch

        from easycv.engine import CVEngine
        from easycv.models import build_model

        root = self.spec.root
        model = build_model(self.spec.model, len(self.classes), root.data.channels)
        return CVEngine(model, root.trainer, torch.device(device), total_steps, dist, root.hardware.precision,
                        self.spec.model.ema)

    def checkpoint_meta(self) -> dict[str, Any]:
        """The config, class names, channels, input size and task (what restore reads back)."""
        from lingjie.schema import to_plain

        spec, d = self.spec, self.spec.root.data
        return {"config": json.loads(json.dumps(to_plain(spec.root))), "classes": list(self.classes),
                "channels": d.channels, "image_size": d.image_size, "task": spec.model.task}

    def task_metrics(self) -> TaskMetrics:
        return _metrics(self.spec, list(self.classes))

    def metrics_extra(self, loop: Any, loaders: Loaders, final: bool) -> dict[str, Any]:
        bad_files = loaders.train.source.stats["bad_files"] + (loaders.eval.source.stats["bad_files"]
                                                               if loaders.eval else [])
        return {"domain": "cv", "bad_files": bad_files}

    def trained(self, engine: Engine) -> Restored:
        return Restored(engine, CVState(self.classes, self.spec.root.data.channels), self.spec)

    # ----- from a checkpoint
    def restore(self, checkpoint: Path) -> Restored:
        """Engine (EMA weights when there are) + the checkpoint's own spec (model, transforms,
        classes, input size); this run's trainer/hardware/paths/data paths still apply."""
        import torch

        from easycv.engine import CVEngine
        from easycv.models import build_model
        from lingjie.errors import DataError
        from trainer.checkpoint_io import read_checkpoint
        from trainer.process import device

        state = read_checkpoint(checkpoint)
        meta = state["meta"]
        if meta.get("task") not in ("classification", "detection") or "config" not in meta:
            raise DataError("not an easycv checkpoint (no classes / task in its meta)", file=str(checkpoint))
        spec = _saved_spec(meta, self.spec)
        model = build_model(spec.model, len(meta["classes"]), meta["channels"])
        engine = CVEngine(model, None, torch.device(device(self.spec)), precision=self.spec.root.hardware.precision,
                          ema=None)
        engine.model.load_state_dict(state["ema"]["model"] if state.get("ema") else state["model"])
        return Restored(engine, CVState(list(meta["classes"]), meta["channels"]), spec, meta)

    def evaluate(self, restored: Restored, path: str) -> tuple[dict[str, float], dict[str, Any]]:
        from trainer.loop import evaluate

        root, spec, st = self.spec.root, restored.spec, restored.state
        records = _records(spec, path, st.classes, "trainer.evaluate.data_path", root.data.limit_eval_rows)
        _check_classes(records.classes, st.classes, path)
        loader = _loader(spec, records, train=False, channels=st.channels)
        metrics = evaluate(restored.engine, loader, spec.task_types, root.trainer.limit_eval_batches,
                           show_progress=root.trainer.progress_bar, total=loader.num_batches(),
                           metrics=_metrics(spec, list(st.classes)))
        return metrics, {"bad_rows": loader.source.stats["bad_rows"]}

    def predict(self, restored: Restored, run: RunDir) -> Path:
        """Predictions of every input image as JSON: classification ``label`` / ``score`` / ``top5``;
        detection ``boxes`` (x1, y1, x2, y2 in the original image's pixels), ``scores``, ``labels``."""
        root, spec, st = self.spec.root, restored.spec, restored.state
        path = root.trainer.predict.input_path or root.data.eval_path
        if not path:
            raise ConfigError("trainer.predict.input_path", "no images to predict: set it or data.eval_path")
        records = _records(spec, path, st.classes, "trainer.predict.input_path", root.data.limit_eval_rows,
                           labelled=False)
        loader = _loader(spec, records, train=False, channels=st.channels)
        row = _detection_row if spec.detection else _classification_row
        rows: list[dict[str, Any]] = []
        for _, batch in loader.epoch(0):
            preds = restored.engine.predict(batch)
            rows += [row(batch, preds, i, f, st.classes) for i, f in enumerate(batch.files)]
        out = Path(root.trainer.predict.output_path or run.root / "predictions.json")
        atomic_write_json(out, {"task": spec.model.task, "checkpoint_classes": st.classes,
                                "bad_files": loader.source.stats["bad_files"], "predictions": rows})
        return out

    def export(self, restored: Restored, run: RunDir) -> Path:
        """The TorchScript / torch.export program of the (EMA) model and a meta.json describing it."""
        import torch

        from easycv.data.transforms import Pipeline

        spec, d, channels = restored.spec, restored.spec.root.data, restored.state.channels
        fmt = spec.root.trainer.export.format
        example = torch.rand(2, channels, d.image_size, d.image_size, generator=torch.Generator().manual_seed(0))
        norm = Pipeline(spec.eval_transforms).normalize
        out = restored.engine.export_cv(run.export, fmt, example, norm, channels,
                                        _export_meta(spec, restored.state, norm))
        log.info("exported %s program to %s", fmt, out)
        return out


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


def _metrics(spec: CVRunSpec, classes: list[str]) -> Any:
    from easycv.metrics import ClassificationMetrics, DetectionMetrics

    if spec.detection:
        return DetectionMetrics(spec.task_types, len(classes))
    return ClassificationMetrics(spec.task_types, classes)


def _check_classes(found: list[str], classes: list[str], path: str) -> None:
    if found != classes:
        raise ConfigError("data.eval_path", f"the classes of {path} ({', '.join(found[:10])}) differ from the "
                          f"training classes ({', '.join(classes[:10])}); set data.classes")


def _saved_spec(meta: dict[str, Any], current: CVRunSpec) -> CVRunSpec:
    """The checkpoint's model and transforms with this run's shared groups; the input size and
    channels of the checkpoint are written into this run's data group."""
    saved = validate_root({**meta["config"], "trainer": {**meta["config"]["trainer"], "mode": "evaluate"}})
    spec = CVRunSpec(root=current.root, model=saved.model, train_transforms=saved.train_transforms,
                     eval_transforms=saved.eval_transforms)
    spec.root.data.image_size = meta["image_size"]
    spec.root.data.channels = meta["channels"]
    return spec


def _classification_row(batch: Any, preds: dict[str, Any], i: int, file: str, classes: list[str]) -> dict[str, Any]:
    from easycv.results import classification_result

    return {"file": file, **classification_result(preds["label"][i], classes)}


def _detection_row(batch: Any, preds: dict[str, Any], i: int, file: str, classes: list[str]) -> dict[str, Any]:
    """Boxes mapped back from the network input to the original image's pixels."""
    from easycv.results import detection_result

    return {"file": file, **detection_result(preds["boxes"][i], batch.affines[i], batch.orig_sizes[i], classes)}


def _export_meta(spec: CVRunSpec, state: CVState, norm: Any) -> dict[str, Any]:
    """meta.json of an export: task, classes, the input contract and the outputs."""
    d = spec.root.data
    preprocess = [t.__dict__ for t in spec.eval_transforms if t.name != "normalize"]
    meta: dict[str, Any] = {
        "task": spec.model.task, "experiment": spec.root.experiment_name, "model": spec.model.name,
        "domain": "cv", "experiment_name": spec.root.experiment_name,
        "classes": state.classes,
        "input": {"name": "images", "shape": ["batch", state.channels, d.image_size, d.image_size],
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
    return meta
