"""The torch Engine: steps, optimizers with separate sparse/dense rates, checkpoints, export."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataio.atomic import atomic_write_bytes
from trainer.checkpoint_io import read_checkpoint, to_safe
from trainer.distributed import DistContext
from trainer.engine import Engine
from trainer.run_dir import RunDir
from trainer.schema.spec import TrainerSpec
from trainer.timing import NO_LAPS, Laps
from trainer.torch_backend.fast import EmbeddingProbe, apply_fast_paths, embedding_modules
from trainer.torch_backend.optim import make_optimizer, make_scheduler
from trainer.torch_backend.tensors import to_inputs, to_labels

FORMAT_VERSION = 3  # 3: weights_only-loadable (numpy values tagged by trainer.checkpoint_io.to_safe)


def as_float(v: Any) -> Any:
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

        return Join([self.forward_module, *self.joinables()])

    def joinables(self) -> list[Any]:
        """More objects whose collectives must join when ranks run out of batches unevenly."""
        return []

    def after_optimizers(self) -> None:
        """Runs right after the optimizers stepped, before the loss scaler and schedulers update
        (e.g. row-wise updates of a domain's dynamic tables)."""

    def timing_sample_every(self, configured: int | None) -> int:
        # on a GPU each stage boundary is a synchronisation: split only every 20th step
        return configured or (20 if self.device.type == "cuda" else 1)

    def timing_sync(self) -> Any:
        return torch.cuda.synchronize if self.device.type == "cuda" else None

    def train_step(self, batch: Any) -> tuple[float, dict[str, np.ndarray]]:
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

    def _forward_backward(self, batch: Any, laps: Any) -> tuple[Any, dict]:
        self.forward_module.train()
        inputs, labels = self.inputs(batch), self.labels(batch)
        laps.lap("h2d")
        with self._autocast():
            outputs = self.forward_module(inputs)
            outputs = {k: as_float(v) for k, v in outputs.items()}
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
        self.after_optimizers()
        if self.scaler is not None:
            self.scaler.update()
        for s in self.schedulers:
            s.step()

    def eval_step(self, batch: Any, recall_k: list[int]) -> tuple[float, dict[str, np.ndarray], dict[int, float]]:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            outputs = {k: as_float(v) for k, v in self.model(self.inputs(batch)).items()}
            labels = self.labels(batch)
            loss = float(self.model.loss(outputs, labels))
            preds = to_host(self.model.predict(outputs))
            hits = self.in_batch_recall(outputs, labels, recall_k) if self.retrieval and recall_k else {}
        return loss, preds, hits

    def in_batch_recall(self, outputs: dict[str, Any], labels: dict[str, Any], recall_k: list[int]) -> dict[int, float]:
        """Retrieval models: recall@k of each positive among the batch's items (none here)."""
        return {}

    def predict(self, batch: Any) -> dict[str, np.ndarray]:
        self.model.eval()
        with torch.no_grad():
            outputs = self.model(self.inputs(batch))
            return to_host(self.model.predict(outputs))

    def inputs(self, batch: Any) -> Any:
        """Model inputs on the device: a batch may convert itself (``to_torch``), else its flat
        dict of arrays (``to_flat()``) becomes tensors."""
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
        # tensors and plain data only: read_checkpoint loads it with weights_only=True
        torch.save(to_safe({**self.checkpoint_state(), "meta": meta}), buf)
        path = run.checkpoints / f"{name}.pt"
        atomic_write_bytes(path, buf.getvalue())
        if name != "best":
            atomic_write_bytes(run.checkpoints / "latest", path.name.encode())
        return path

    def restore(self, path: Path) -> dict[str, Any]:
        state = read_checkpoint(path)
        self.load_checkpoint_state(state)
        return state["meta"]

    def load_weights(self, path: Path) -> None:
        self.model.load_state_dict(read_checkpoint(path)["model"])
