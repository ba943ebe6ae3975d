"""The torch engine for easycv: TorchEngine (DDP, autocast, GradScaler, optimizers, warmup +
cosine schedules, atomic checkpoints) plus an EMA of the weights that evaluation, prediction
and export use, and an export of the model's ``serve`` computation with preprocessing baked in."""
from __future__ import annotations

import copy
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataio.atomic import atomic_write_bytes, atomic_write_json
from trainer.distributed import DistContext
from trainer.schema.spec import TrainerSpec
from trainer.torch_backend.engine import TorchEngine, as_float, to_host
from trainer.torch_backend.programs import PROGRAM_FILES



class ModelEMA:
    """Exponential moving average of every floating-point entry of the state dict (weights and
    batch-norm statistics); decay ramps up as ``decay * (1 - exp(-updates / warmup))`` (YOLOX),
    so the average does not drag in the random initial weights."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup_steps: int) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup_steps
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.warmup))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class ServeModule(torch.nn.Module):
    """What an export runs: ``images`` float [B, C, H, W] in 0..1 -> normalise -> model.serve."""

    def __init__(self, model: torch.nn.Module, mean: list[float], std: list[float], channels: int) -> None:
        super().__init__()
        self.model = model
        expand = lambda v: v * channels if len(v) == 1 else v  # noqa: E731
        self.register_buffer("mean", torch.tensor(expand(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(expand(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.serve((images - self.mean) / self.std)


class CVEngine(TorchEngine):
    """TorchEngine + weight EMA (``model.ema``)."""

    def __init__(self, model: torch.nn.Module, spec: TrainerSpec | None, device: torch.device,
                 total_steps: int = 1000, dist: DistContext | None = None, precision: str = "fp32",
                 ema: Any = None) -> None:
        super().__init__(model, spec, device, total_steps, dist, precision)
        self.ema = ModelEMA(self.model, ema.decay, ema.warmup_steps) if ema is not None and ema.enabled else None

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def train_step(self, batch: Any) -> tuple[float, dict[str, np.ndarray]]:
        loss, preds = super().train_step(batch)
        if self.ema is not None:
            self.ema.update(self.model)
        return loss, preds

    def eval_step(self, batch: Any, recall_k: list[int]) -> tuple[float, dict[str, Any], dict[int, float]]:
        model = self.eval_model.eval()
        with torch.no_grad(), self._autocast():
            outputs = {k: as_float(v) for k, v in model(self.inputs(batch)).items()}
            loss = float(model.loss(outputs, self.labels(batch)))
            preds = to_host(model.predict(outputs))
        return loss, preds, {}

    def predict(self, batch: Any) -> dict[str, Any]:
        model = self.eval_model.eval()
        with torch.no_grad(), self._autocast():
            outputs = {k: as_float(v) for k, v in model(self.inputs(batch)).items()}
            return to_host(model.predict(outputs))

    def checkpoint_state(self) -> dict[str, Any]:
        return {**super().checkpoint_state(), "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        if self.ema is not None:
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            else:  # a checkpoint without EMA: start the average from its weights
                self.ema.module.load_state_dict(state["model"])

    def export_cv(self, out_dir: Path, fmt: str, example: torch.Tensor, normalize: Any, channels: int,
                  meta: dict[str, Any]) -> Path:
        """Write the program (``images`` in 0..1 -> outputs, normalisation inside) and meta.json."""
        model = copy.deepcopy(self.eval_model).cpu().eval()
        mean, std = (normalize.mean, normalize.std) if normalize is not None else ([0.0], [1.0])
        serving = ServeModule(model, mean, std, channels).eval()
        example = example.cpu()
        buf = io.BytesIO()
        with torch.no_grad():
            if fmt == "torchscript":
                program = torch.jit.trace(serving, example, strict=False)
                torch.jit.save(program, buf)
            else:
                exported = torch.export.export(
                    serving, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
                if fmt == "onnx":
                    from trainer.torch_backend.onnx_program import onnx_bytes

                    outputs = list(serving(example))
                    buf.write(onnx_bytes(exported, ["images"], outputs))
                    meta = {**meta, "onnx_inputs": ["images"], "outputs": outputs}
                else:
                    torch.export.save(exported, buf)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / PROGRAM_FILES[fmt], buf.getvalue())
        atomic_write_json(out_dir / "meta.json", {"format": fmt, "domain": "cv", "program": PROGRAM_FILES[fmt], **meta})
        return out_dir
