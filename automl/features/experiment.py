"""Data paths of a composed experiment config (see trainer.compose for composing it)."""
from __future__ import annotations

from typing import Any


def data_paths(cfg: dict[str, Any]) -> tuple[str, str]:
    """(train_path, eval_path) of a composed config, preparing a bundled dataset first."""
    data = cfg["data"]
    if data.get("dataset"):
        from dataio.datasets import ensure_dataset

        ensure_dataset(data["dataset"], cfg["paths"]["data_dir"],
                       show_progress=cfg.get("trainer", {}).get("progress_bar", True))
    if not data.get("train_path") or not data.get("eval_path"):
        from lingjie.errors import ConfigError

        raise ConfigError("data.eval_path", "feature generation needs both data.train_path and data.eval_path")
    return str(data["train_path"]), str(data["eval_path"])
