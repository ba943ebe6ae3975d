"""`python -m trainer +experiment=NAME [overrides]`: compose, validate and run one job.

Errors the user can fix (config, data) print one clear line and exit with status 2; the last
line of a successful run names the run directory.
"""
from __future__ import annotations

import logging
import os
import sys

# TensorFlow's C++ log lines (CUDA probing on CPU machines, op placement) drown the progress
# output; Python-level errors still surface. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hydra
from omegaconf import DictConfig, OmegaConf

from lingjie.errors import LingjieError

log = logging.getLogger("lingjie")


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from omegaconf.errors import OmegaConfBaseException

    from trainer.job import run_job

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        _fail(f"config error: {exc}")
    try:
        run_dir = run_job(plain, config_yaml)
    except LingjieError as exc:
        _fail(str(exc))
    print(f"run directory: {run_dir}", flush=True)
    return None


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
