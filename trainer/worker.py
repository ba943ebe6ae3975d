"""A training worker: ``python -m trainer.worker --config RESOLVED.yaml [--run-dir DIR] [--resume]``.

Launchers start this: torchrun's elastic agent (env RANK, WORLD_SIZE, MASTER_ADDR, ...), the
TF multi-worker launcher (TF_CONFIG), or a Kubernetes PyTorchJob / TFJob pod whose config comes
from a ConfigMap. The config is the already-resolved YAML the launcher wrote, so every worker
runs exactly the same job.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="resolved config YAML (the run's config.yaml)")
    parser.add_argument("--run-dir", default=None, help="run directory (default: paths.run_dir of the config)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    args = parser.parse_args(argv)

    import logging

    from omegaconf import OmegaConf

    from lingjie.errors import LingjieError
    from trainer.job import run_job

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    cfg = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    if args.run_dir:
        cfg["paths"]["run_dir"] = args.run_dir
    if args.resume:
        cfg["trainer"]["resume"] = cfg["paths"]["run_dir"]
    os.environ["LINGJIE_WORKER"] = "1"
    try:
        run_dir = run_job(cfg, OmegaConf.to_yaml(OmegaConf.create(cfg)))
    except LingjieError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"run directory: {run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
