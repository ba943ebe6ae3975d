"""Rebuild pipeline, model and engine from one checkpoint (evaluate / predict / export modes).

The checkpoint's own meta carries the config and the fitted feature state, so a checkpoint
alone is enough; its backend decides which engine loads it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.checkpoint_io import checkpoint_backend, read_meta
from trainer.engine import Engine
from trainer.lifecycle import Restored


def restore(path: Path) -> Restored:
    """Engine (no optimizers) and fitted feature pipeline (``state``) of a rec checkpoint."""
    from easyrec.features.pipeline import FeaturePipeline
    from easyrec.schema import build_model_config

    meta = read_meta(path)
    backend = checkpoint_backend(Path(path))
    pipeline = FeaturePipeline.from_state_dict(meta["feature_state"])
    model_cfg = build_model_config(meta["config"]["model"], backend)
    engine = make_engine(backend, model_cfg, pipeline, spec=None, device="cpu")
    engine.restore(Path(path))
    return Restored(engine=engine, state=pipeline, spec=None, meta=meta)


def make_engine(backend: str, model_cfg: Any, pipeline: Any, spec: Any, device: str = "cpu",
                total_steps: int = 1000, dist: Any = None, precision: str = "fp32") -> Engine:
    """The engine of ``backend`` around a freshly built model (spec None: no optimizers)."""
    from easyrec.models.specs import build_model

    if backend == "tf":
        import tensorflow as tf

        from trainer import tf_strategy as multiworker
        from easyrec.tf_backend.engine import TFEngine

        # hardware.precision=bf16: MLPs / cross / attention compute in bfloat16 (tables, losses
        # and variables stay float32); the policy must be set while the model is built
        policy = "mixed_bfloat16" if precision == "bf16" else "float32"
        previous = tf.keras.mixed_precision.global_policy()
        tf.keras.mixed_precision.set_global_policy(policy)
        try:
            with multiworker.scope(dist):  # a multi-worker TF job: model + optimizers are mirrored
                model = build_model(model_cfg, pipeline.feature_infos(), backend=backend)
                return TFEngine(model, spec, total_steps=total_steps, features=pipeline.feature_infos(), dist=dist)
        finally:
            tf.keras.mixed_precision.set_global_policy(previous)
    model = build_model(model_cfg, pipeline.feature_infos(), backend=backend)
    import torch

    from easyrec.torch_engine import RecTorchEngine

    return RecTorchEngine(model, spec, torch.device(device), total_steps=total_steps, dist=dist, precision=precision)
