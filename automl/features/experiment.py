"""Compose an experiment config with Hydra's compose API (what `python -m trainer` would see)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def compose_experiment(overrides: list[str]) -> dict[str, Any]:
    """The resolved config dict for ``overrides`` (e.g. ``["+experiment=movielens_deepfm"]``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose("config", overrides=["paths.run_dir=/nonexistent/run", *overrides],
                          return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            with open_dict(cfg):
                del cfg["hydra"]
            return OmegaConf.to_container(cfg, resolve=True)
    finally:
        GlobalHydra.instance().clear()


def data_paths(cfg: dict[str, Any]) -> tuple[str, str]:
    """(train_path, eval_path) of a composed config, preparing a bundled dataset first."""
    data = cfg["data"]
    if data.get("dataset"):
        from dataio.datasets import ensure_dataset

        ensure_dataset(data["dataset"], cfg["paths"]["data_dir"])
    if not data.get("train_path") or not data.get("eval_path"):
        from trainer.errors import ConfigError

        raise ConfigError("data.eval_path", "feature generation needs both data.train_path and data.eval_path")
    return str(data["train_path"]), str(data["eval_path"])
