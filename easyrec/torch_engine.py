"""The recommendation torch engine: trainer's TorchEngine plus what only rec models have.

Dynamic embedding tables (row-wise updates, admission and eviction after every optimizer
step; their collectives join DDP's), in-batch recall@k of two-tower models, and the export
of a program together with the fitted feature pipeline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lingjie.errors import ConfigError
from trainer.torch_backend.engine import TorchEngine


class RecTorchEngine(TorchEngine):
    """TorchEngine + dynamic tables, retrieval recall and the rec export."""

    def __init__(self, model: torch.nn.Module, spec: Any, device: torch.device, total_steps: int = 1000,
                 dist: Any = None, precision: str = "fp32") -> None:
        super().__init__(model, spec, device, total_steps, dist, precision)
        self.dynamic = self._attach_dynamic(spec)

    def _attach_dynamic(self, spec: Any) -> Any:
        """The step hook of the model's dynamic embedding tables (easyrec.dynamic), or None."""
        from easyrec.dynamic.module import dynamic_modules

        if spec is None or not dynamic_modules(self.model):
            return None
        if self.scaler is not None:
            raise ConfigError("hardware.precision", "dynamic embedding tables take no fp16 loss scaling; "
                              "use hardware.precision=bf16 or fp32")
        from easyrec.dynamic.engine import DynamicTables

        return DynamicTables.attach(self.model, spec.optimizer.sparse, self.optimizers, self.dist.world_size)

    def joinables(self) -> list[Any]:
        return [self.dynamic] if self.dynamic is not None else []

    def after_optimizers(self) -> None:
        if self.dynamic is not None:  # dynamic tables: row-wise updates, admission, eviction
            self.dynamic.step()

    def in_batch_recall(self, outputs: dict[str, Any], labels: dict[str, Any], recall_k: list[int]) -> dict[int, float]:
        from easyrec.models.torch.retrieval import in_batch_recall_at_k

        first = self.model.task_labels[0] if hasattr(self.model, "task_labels") else next(iter(labels))
        pos = labels[first] > 0.5
        if int(pos.sum()) <= 1:
            return {}
        return {k: in_batch_recall_at_k(outputs["user_emb"][pos], outputs["item_emb"][pos], k) for k in recall_k}

    def export(self, pipeline: Any, example: Any, out_dir: Path, fmt: str, task_types: dict[str, str],
               extra_meta: dict[str, Any]) -> Path:
        """The torch.export / TorchScript / ONNX program + feature_state.json + meta.json."""
        from easyrec.torch_export import export_model

        model = self.model.cpu().eval()
        try:
            return export_model(model, pipeline, example, out_dir, fmt, task_types, extra_meta)
        finally:
            self.model.to(self.device)
