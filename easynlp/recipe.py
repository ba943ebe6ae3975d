"""The text domain's part of the training lifecycle (trainer.lifecycle.Recipe).

Rank 0 prepares the bundled data and the pretrained encoder (``model.pretrained``), then fits
the tokenizer and the label vocabulary on the train split (:mod:`easynlp.text_state`); every
rank uses the identical state. The shared TrainLoop runs on trainer's TorchEngine (DDP,
autocast, schedulers); the export writes the network with the tokenizer. metrics.json adds the task, the token counts
(padding waste, tokens/s) and the padding policy. A checkpoint's meta holds the config and the
text state (``"domain": "nlp"``), so evaluate / predict / export rebuild everything from the
checkpoint alone (:mod:`easynlp.restore`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from easynlp.inputs import make_encoder, make_loader
from easynlp.restore import make_engine, new_model, plain_config
from easynlp.text_state import TextState, fit_text_state, resolve_pretrained
from trainer.engine import Engine
from trainer.lifecycle import Loaders, Recipe, Restored, batches_per_epoch
from trainer.metric_report import TaskMetrics
from trainer.process import ensure_data
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie.nlp")


def _limited(rows: int | None, limit: int | None) -> int | None:
    return min(rows, limit) if rows and limit else rows


class NLPRecipe(Recipe):
    """TextState (tokenizer + labels) -> TextLoader (bucketed padding) -> text model on TorchEngine."""

    domain = "nlp"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.pretrained: Path | None = None  # model.pretrained as a local directory
        self.state: TextState | None = None
        self.resumed = False
        self.encoder: Any = None
        self._tokens = {"real": 0, "padded": 0}  # over all ranks, filled in after the fit

    # ----- training
    def prepare_data(self) -> None:
        ensure_data(self.spec)
        self.pretrained = resolve_pretrained(self.spec)

    def model_config_keys(self) -> list[str]:
        """The model and what shapes its embeddings and head: max length, tokenizer, labels.
        (The inherited :meth:`Recipe.check_resume` refuses a resume that changes them.)"""
        return ["model", "data.max_len", "data.tokenizer", "data.labels"]

    def config_view(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        """Root-shaped: the typed model (without its derived tasks) replaces the raw group."""
        plain = meta["config"] if meta is not None else json.loads(json.dumps(plain_config(self.spec)))
        return {**plain["root"], "model": plain["model"]}

    def fit_state(self, meta: dict[str, Any] | None, dist: Any, run: RunDir) -> None:
        if not dist.is_main:
            self.pretrained = resolve_pretrained(self.spec)  # prepared by rank 0: now only a lookup
        if meta is not None:
            self.state = TextState.from_meta(meta["text_state"])
        else:
            fitted = fit_text_state(self.spec, self.pretrained).to_meta() if dist.is_main else None
            if dist.distributed:
                fitted = dist.all_gather_object(fitted)[0]
            self.state = TextState.from_meta(fitted)
        self.resumed = meta is not None
        self.encoder = make_encoder(self.spec, self.state)

    def loaders(self, dist: Any) -> Loaders:
        spec, data = self.spec, self.spec.root.data
        train = make_loader(spec, self.encoder, data.train_path, train=True, dist=dist)
        evl = make_loader(spec, self.encoder, data.eval_path, train=False, dist=dist) if data.eval_path else None
        rows = _limited(self.state.train_rows, data.limit_train_rows)
        eval_rows = _limited(evl.source.count_rows() if evl is not None else None, data.limit_eval_rows)
        return Loaders(train, evl, batches_per_epoch(rows, data.batch_size, dist.world_size),
                       batches_per_epoch(eval_rows, data.eval_batch_size))

    def build_engine(self, device: str, total_steps: int, dist: Any, loaders: Loaders) -> Engine:
        root, data = self.spec.root, self.spec.root.data
        model = new_model(self.spec, self.state)
        if self.pretrained is not None and not self.resumed:
            from easynlp.models import load_pretrained_weights

            load_pretrained_weights(model, self.pretrained)
            log.info("loaded pretrained encoder weights from %s", self.pretrained)
        engine = make_engine(model, root.trainer, device, total_steps, dist, root.hardware.precision)
        log.info("text model %s (%s) on %s: %d %s, max_len %d, padding=%s", self.spec.model.name,
                 self.spec.model.task, device, len(self.state.labels), "tags" if self.spec.is_token else "classes",
                 data.max_len, data.padding)
        return engine

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": plain_config(self.spec), "text_state": self.state.to_meta(), "domain": "nlp"}

    def task_metrics(self) -> TaskMetrics:
        from easynlp.metrics import NLPMetrics

        return NLPMetrics(self.spec.task_types, {self.spec.task_name: self.state.labels})

    def metrics_extra(self, loop: Any, loaders: Loaders, final: bool) -> dict[str, Any]:
        return {"domain": "nlp", "task": self.spec.model.task, "tokens": self.count_tokens(loop, loaders),
                "padding": self.spec.root.data.padding}

    def count_tokens(self, loop: Any, loaders: Loaders) -> dict[str, Any]:
        """Tokens of this run's training batches (padding waste, tokens/s): this process's own
        counts while training, every rank's after the fit."""
        totals = self._tokens if self._tokens["padded"] else loaders.train.totals
        real, padded = totals["real"], totals["padded"]
        p = loop.progress
        return {"real": real, "padded": padded,
                "padding_fraction": 1 - real / padded if padded else 0.0,
                "train_tokens_per_sec": real / p.train_time if p.train_time else 0.0}

    def after_fit(self, loop: Any, loaders: Loaders, dist: Any) -> None:
        """Sum the token counts over the ranks."""
        totals = [loaders.train.totals["real"], loaders.train.totals["padded"]]
        self._tokens["real"], self._tokens["padded"] = (int(v) for v in (dist.sum(totals) if dist.distributed
                                                                         else totals))

    def load_best(self, engine: Engine, path: Path) -> None:
        engine.load_weights(path)

    def trained(self, engine: Engine) -> Restored:
        return Restored(engine, self.state, self.spec)

    # ----- from a checkpoint
    def restore(self, checkpoint: Path) -> Restored:
        from easynlp.restore import restore

        return restore(checkpoint, self.spec)

    def evaluate(self, restored: Restored, path: str) -> tuple[dict[str, float], dict[str, Any]]:
        from easynlp.metrics import NLPMetrics
        from trainer.loop import evaluate

        spec = restored.spec
        trainer = spec.root.trainer
        loader = make_loader(spec, make_encoder(spec, restored.state), path, train=False)
        metrics = evaluate(restored.engine, loader, spec.task_types, trainer.limit_eval_batches,
                           show_progress=trainer.progress_bar,
                           metrics=NLPMetrics(spec.task_types, {spec.task_name: restored.state.labels}))
        return metrics, {"bad_rows": loader.source.stats.get("bad_rows", 0)}

    def predict(self, restored: Restored, run: RunDir) -> Path:
        from easynlp.predict import predict_to_file

        return predict_to_file(restored, run)

    def export(self, restored: Restored, run: RunDir) -> Path:
        spec, state, data = restored.spec, restored.state, restored.spec.root.data
        meta = {"experiment": spec.root.experiment_name, "model": spec.model.name, "task": spec.model.task,
                "task_name": spec.task_name, "labels": state.labels, "max_len": data.max_len,
                "text_column": data.text_column, "text_pair_column": data.text_pair_column,
                "tokenizer_kind": state.tokenizer_kind, "arch": state.arch,
                "domain": "nlp", "experiment_name": spec.root.experiment_name}
        fmt = spec.root.trainer.export.format
        from easynlp.export import export_text_model

        out = export_text_model(restored.engine.model, state.tokenizer_json, run.export, fmt, meta)
        log.info("exported %s program to %s", fmt, out)
        return out
