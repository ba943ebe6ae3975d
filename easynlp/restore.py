"""A text model from its parts or from a checkpoint: network, engine, training-time spec.

A checkpoint's meta holds the config (``config``), the tokenizer JSON, the labels and the
network description (``text_state``) and ``"domain": "nlp"``, so evaluate / predict / export
rebuild everything from the checkpoint alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from easynlp.schema import NLPRunSpec
from easynlp.text_state import TextState
from lingjie.errors import ConfigError
from trainer.lifecycle import Restored

# data keys a restored model takes from this run's config (the rest: from the checkpoint)
RUN_DATA_KEYS = ("train_path", "eval_path", "format", "csv", "schema", "batch_size", "eval_batch_size",
                 "limit_eval_rows", "on_error", "storage_options", "read_rows", "padding", "pad_to_multiple_of",
                 "bucket_pool_batches")


def new_model(spec: NLPRunSpec, state: TextState) -> Any:
    """A freshly initialized network for the fitted state (labels, architecture)."""
    from easynlp.models import build_model

    o_index = state.labels.index("O") if "O" in state.labels else 0
    return build_model(state.arch, len(state.labels), spec.is_token, spec.task_name, spec.model.dropout,
                       spec.model.label_smoothing, o_index)


def make_engine(model: Any, trainer: Any, device: str, total_steps: int, dist: Any, precision: str) -> Any:
    """``model`` on trainer's TorchEngine (trainer None: no optimizers, for inference); a text
    batch converts itself to model inputs (``TextBatch.to_torch``)."""
    import torch

    from trainer.torch_backend.engine import TorchEngine

    return TorchEngine(model, trainer, torch.device(device), total_steps, dist, precision)


def plain_config(spec: NLPRunSpec) -> dict[str, Any]:
    """The spec as the plain ``config`` a checkpoint carries (model without its derived tasks)."""
    from lingjie.schema import to_plain

    model = to_plain(spec.model)
    model.pop("tasks", None)
    return {"root": to_plain(spec.root), "model": model}


def spec_from_meta(meta: dict[str, Any]) -> NLPRunSpec:
    """The training-time spec saved in a checkpoint."""
    from easynlp.validate import build_model_spec, validate

    root = dict(meta["config"]["root"])
    root["model"] = meta["config"]["model"]
    spec = validate({**root, "trainer": {**root["trainer"], "mode": "evaluate"}})
    spec.model = build_model_spec(meta["config"]["model"])
    return spec


def restore(ckpt: Path, current: NLPRunSpec) -> Restored:
    """Model (on CPU, no optimizers), TextState and the training-time spec from a checkpoint;
    data paths, batching, trainer, paths and hardware from ``current``."""
    from trainer.checkpoint_io import read_meta

    meta = read_meta(ckpt)
    if meta.get("domain") != "nlp" or "text_state" not in meta:
        raise ConfigError("checkpoint", f"{ckpt} is not a text-model checkpoint (domain {meta.get('domain', 'rec')!r})")
    trained = spec_from_meta(meta)
    for key in RUN_DATA_KEYS:
        setattr(trained.root.data, key, getattr(current.root.data, key))
    trained.root.trainer = current.root.trainer
    trained.root.paths = current.root.paths
    trained.root.hardware = current.root.hardware
    state = TextState.from_meta(meta["text_state"])
    engine = make_engine(new_model(trained, state), None, "cpu", 1, None, "fp32")
    engine.load_weights(ckpt)
    return Restored(engine, state, trained, meta)
