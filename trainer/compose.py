"""Compose the config tree with Hydra's compose API: the resolved config dict that
`python -m trainer <overrides>` would see (used by tests and the automl tools)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved config dict for ``overrides`` (e.g. ``["+experiment=movielens_deepfm"]``).

    ``paths.run_dir`` (Hydra's runtime output dir, unknown outside a job) is set to a
    placeholder; override it when it matters.
    """
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
