"""One Lingjie job: validate -> launch workers, or run the domain's recipe in this process.

Heavy modules (torch, tensorflow, pyarrow, the model zoo) are imported only after the config
validated, and only the chosen backend's framework is imported at all. The domain (``domain:
rec | cv | nlp``) is found by name through :mod:`trainer.domains`; trainer imports none.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from lingjie.errors import ConfigError
from trainer.process import resolve_run, setup_omp, write_config
from trainer.run_dir import RunDir
from trainer.schema.validate import validate
from trainer.secrets import config_at_rest

log = logging.getLogger("lingjie")


def run_job(cfg: dict[str, Any], config_yaml: str) -> Path:
    """Run the job described by the resolved config ``cfg``; returns the run directory."""
    config_yaml = config_at_rest(cfg)  # what is written down holds no secret (trainer.secrets)
    spec = validate(cfg)
    setup_omp(spec)
    root = spec.root
    run = RunDir(root.paths.run_dir)
    mode = root.trainer.mode
    hw = root.hardware
    inside_worker = os.environ.get("LINGJIE_WORKER") == "1"
    if mode == "train" and hw.launcher == "k8s" and not inside_worker:
        from trainer.launch.k8s import render_and_maybe_submit

        return render_and_maybe_submit(spec, run, config_yaml)
    if mode == "train" and hw.launcher in ("torchrun", "tf_multiworker") and not inside_worker:
        return _launch(spec, run, config_yaml)
    from trainer import lifecycle
    from trainer.domains import domain_module

    domain = domain_module(root.domain)
    extra_modes = getattr(domain, "EXTRA_MODES", {})
    if mode in extra_modes:  # e.g. rec's stream mode (online training from Kafka)
        return extra_modes[mode](spec, run, config_yaml)
    recipe = domain.recipe(spec)
    if mode == "train":
        run, resumed = resolve_run(spec, run)
        return lifecycle.train(recipe, run, config_yaml, resumed)
    return lifecycle.run_checkpoint_mode(recipe, run, config_yaml)


def _launch(spec: Any, run: RunDir, config_yaml: str) -> Path:
    """Start the workers on the distributed engine the hardware profile names; wait for them."""
    root = spec.root
    hw = root.hardware
    run, resumed = resolve_run(spec, run)
    write_config(run, config_yaml)
    if hw.launcher == "torchrun":
        if root.trainer.backend != "torch":
            raise ConfigError("hardware.launcher", "torchrun launches torch workers; for trainer.backend=tf use "
                              "hardware=tf_multiworker")
        from trainer.launch.torchrun import launch_torchrun

        launch_torchrun(hw, run.root, run.config, resumed)
    else:
        if root.trainer.backend != "tf":
            raise ConfigError("hardware.launcher", "tf_multiworker launches TF workers; use trainer.backend=tf "
                              "(or hardware=ddp_cpu for torch)")
        from trainer.launch.tf_multiworker import launch_tf_workers

        launch_tf_workers(hw, run.root, run.config, resumed)
    if run.metrics.exists():
        from trainer.loop import format_metrics

        final = json.loads(run.metrics.read_text()).get("final", {})
        log.info("final: %s", format_metrics(final))
    return run.root
