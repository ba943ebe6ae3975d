"""The torch Engine: steps, optimizers with separate sparse/dense rates, checkpoints, export."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataio.atomic import atomic_write_bytes
from easyrec.features.batch import Batch
from trainer.distributed import DistContext
from trainer.engine import Engine
from trainer.run_dir import RunDir
from trainer.schema.spec import TrainerSpec
from trainer.timing import NO_LAPS, Laps
from trainer.torch_backend.fast import EmbeddingProbe, apply_fast_paths, embedding_modules
from trainer.torch_backend.optim import make_optimizer, make_scheduler
from trainer.torch_backend.tensors import to_inputs, to_labels

FORMAT_VERSION = 2


def _float(v: Any) -> Any:
    """fp32 view of a model output (autocast may give bf16/fp16); non-tensors pass through."""
    return v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def to_host(preds: dict[str, Any]) -> dict[str, Any]:
    """Predictions as numpy: tensors -> float arrays; lists (e.g. per-image boxes) element-wise."""
    def conv(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return (v.float() if v.is_floating_point() else v).cpu().numpy()
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return {k: conv(v) for k, v in preds.items()}


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, model: torch.nn.Module, spec: TrainerSpec | None, device: torch.device,
                 total_steps: int = 1000, dist: DistContext | None = None, precision: str = "fp32") -> None:
        self.model = model.to(device)
        self.device = device
        self.dist = dist or DistContext()
        # DDP all-reduces gradients in backward; the inner module keeps loss/predict/params
        self.forward_module: torch.nn.Module = self.model
        if self.dist.distributed and spec is not None:
            from torch.nn.parallel import DistributedDataParallel

            self.forward_module = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
        self.retrieval = bool(getattr(model, "retrieval", False))
        self.grad_clip_norm = spec.grad_clip_norm if spec else None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        if spec is not None:
            sparse_grad = bool(getattr(getattr(model, "cfg", None), "sparse_grad", False))
            # models without embedding tables (vision, text) have only dense parameters
            sparse = model.sparse_parameters() if hasattr(model, "sparse_parameters") else []
            dense = model.dense_parameters() if hasattr(model, "dense_parameters") else list(model.parameters())
            self.optimizers = [o for o in (
                make_optimizer(sparse, spec.optimizer.sparse, sparse_grad),
                make_optimizer(dense, spec.optimizer.dense),
            ) if o is not None]
            self.schedulers = [make_scheduler(o, spec.scheduler, total_steps) for o in self.optimizers]
            apply_fast_paths(self.model, dedup_ids=getattr(spec, "dedup_ids", False),
                             compile_dense=getattr(spec, "compile", False))
        self.dynamic = _attach_dynamic(model, spec, self.optimizers, self.dist, self.scaler)
        self._embedding_modules = embedding_modules(self.model)  # charged to the 'embedding' stage

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def epoch_context(self) -> contextlib.AbstractContextManager:
        if self.forward_module is self.model:
            return contextlib.nullcontext()
        from torch.distributed.algorithms.join import Join

        return Join([self.forward_module, *([self.dynamic] if self.dynamic is not None else [])])

    def timing_sample_every(self, configured: int | None) -> int:
        # on a GPU each stage boundary is a synchronisation: split only every 20th step
        return configured or (20 if self.device.type == "cuda" else 1)

    def timing_sync(self) -> Any:
        return torch.cuda.synchronize if self.device.type == "cuda" else None

    def train_step(self, batch: Batch) -> tuple[float, dict[str, np.ndarray]]:
        clock = self.stage_clock
        laps = clock.begin() if clock is not None else NO_LAPS
        probe = EmbeddingProbe(self._embedding_modules, laps) if isinstance(laps, Laps) else None
        try:
            loss, outputs = self._forward_backward(batch, laps)
        finally:
            if probe is not None:
                probe.remove()
        if probe is not None:  # the lookups' share of forward and backward
            laps.move("dense", "embedding", probe.seconds)
        self._optimizer_step()
        laps.lap("optimizer")
        with torch.no_grad():
            preds = to_host(self.model.predict(outputs))
        loss_value = loss.item()
        laps.lap("host")
        if clock is not None:
            clock.end(laps)
        return loss_value, preds

    def _forward_backward(self, batch: Batch, laps: Any) -> tuple[Any, dict]:
        self.forward_module.train()
        inputs, labels = self.inputs(batch), self.labels(batch)
        laps.lap("h2d")
        with self._autocast():
            outputs = self.forward_module(inputs)
            outputs = {k: _float(v) for k, v in outputs.items()}
            loss = self.model.loss(outputs, labels)
        laps.lap("dense")
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        laps.lap("optimizer")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            for o in self.optimizers:
                self.scaler.unscale_(o)
        else:
            loss.backward()
        laps.lap("dense")
        return loss, outputs

    def _optimizer_step(self) -> None:
        if self.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip_norm)
        for o in self.optimizers:
            if self.scaler is not None:
                self.scaler.step(o)
            else:
                o.step()
        if self.dynamic is not None:  # dynamic tables: row-wise updates, admission, eviction
            self.dynamic.step()
        if self.scaler is not None:
            self.scaler.update()
        for s in self.schedulers:
            s.step()

    def eval_step(self, batch: Batch, recall_k: list[int]) -> tuple[float, dict[str, np.ndarray], dict[int, float]]:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            outputs = {k: _float(v) for k, v in self.model(self.inputs(batch)).items()}
            labels = self.labels(batch)
            loss = float(self.model.loss(outputs, labels))
            preds = to_host(self.model.predict(outputs))
            hits: dict[int, float] = {}
            if self.retrieval and recall_k:
                from easyrec.models.torch.retrieval import in_batch_recall_at_k

                first = self.model.task_labels[0] if hasattr(self.model, "task_labels") else next(iter(labels))
                pos = labels[first] > 0.5
                if int(pos.sum()) > 1:
                    for k in recall_k:
                        hits[k] = in_batch_recall_at_k(outputs["user_emb"][pos], outputs["item_emb"][pos], k)
        return loss, preds, hits

    def predict(self, batch: Batch) -> dict[str, np.ndarray]:
        self.model.eval()
        with torch.no_grad():
            outputs = self.model(self.inputs(batch))
            return to_host(self.model.predict(outputs))

    def inputs(self, batch: Any) -> Any:
        """Model inputs on the device: a batch may convert itself (``to_torch``), else the
        recommendation Batch's flat dict of arrays."""
        if hasattr(batch, "to_torch"):
            return batch.to_torch(self.device)
        return to_inputs(batch, self.device)

    def labels(self, batch: Any) -> Any:
        if hasattr(batch, "labels_to_torch"):
            return batch.labels_to_torch(self.device)
        return to_labels(batch, self.device)

    def current_lr(self) -> float:
        return float(self.optimizers[-1].param_groups[0]["lr"]) if self.optimizers else 0.0

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a checkpoint holds besides the loop's meta (subclasses add their parts)."""
        return {
            "format_version": FORMAT_VERSION,
            "backend": "torch",
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "torch_rng": torch.get_rng_state(),
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`checkpoint_state`."""
        self.model.load_state_dict(state["model"])
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(s)
        if self.scaler is not None and state.get("scaler"):  # fp16: resume with the same loss scale
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])

    def save(self, run: RunDir, name: str, meta: dict[str, Any]) -> Path:
        buf = io.BytesIO()
        torch.save({**self.checkpoint_state(), "meta": meta}, buf)
        path = run.checkpoints / f"{name}.pt"
        atomic_write_bytes(path, buf.getvalue())
        if name != "best":
            atomic_write_bytes(run.checkpoints / "latest", path.name.encode())
        return path

    def restore(self, path: Path) -> dict[str, Any]:
        from trainer.checkpoint_io import read_checkpoint

        state = read_checkpoint(path)
        self.load_checkpoint_state(state)
        return state["meta"]

    def load_weights(self, path: Path) -> None:
        from trainer.checkpoint_io import read_checkpoint

        self.model.load_state_dict(read_checkpoint(path)["model"])

    def export(self, pipeline: Any, example: Batch, out_dir: Path, fmt: str, task_types: dict[str, str],
               extra_meta: dict[str, Any]) -> Path:
        from easyrec.torch_export import export_model

        model = self.model.cpu().eval()
        try:
            return export_model(model, pipeline, example, out_dir, fmt, task_types, extra_meta)
        finally:
            self.model.to(self.device)


def _attach_dynamic(model: torch.nn.Module, spec: TrainerSpec | None, optimizers: list, dist: DistContext,
                    scaler: Any) -> Any:
    """The step hook of the model's dynamic embedding tables (easyrec.dynamic), or None."""
    from easyrec.dynamic.module import dynamic_modules

    if spec is None or not dynamic_modules(model):
        return None
    if scaler is not None:
        from lingjie.errors import ConfigError

        raise ConfigError("hardware.precision", "dynamic embedding tables take no fp16 loss scaling; "
                          "use hardware.precision=bf16 or fp32")
    from easyrec.dynamic.engine import DynamicTables

    return DynamicTables.attach(model, spec.optimizer.sparse, optimizers, dist.world_size)
