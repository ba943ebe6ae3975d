"""One Lingjie job: validate -> launch workers, or run the domain's recipe in this process.

Heavy modules (torch, tensorflow, pyarrow, the model zoo) are imported only after the config
validated, and only the chosen backend's framework is imported at all. The domain (``domain:
rec | cv | nlp``) is found by name through :mod:`trainer.domains`; trainer imports none.

Nothing lost, nothing run that should not: a command refused before it started (config
rejected, run in use, resume with another model) leaves no run directory behind and does not
touch the run it named; a run that then ends with an error writes ``FAILED`` (the error line)
into its directory, so ``trainer.resume=true`` passes it over.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from dataio.atomic import atomic_write_bytes
from lingjie.errors import ConfigError, LingjieError
from trainer import run_info
from trainer.process import claim_run, remove_fresh_dir, resolve_run, setup_omp, write_config
from trainer.run_dir import RunDir
from trainer.run_lock import held_runs
from trainer.schema.validate import validate
from trainer.redaction import config_at_rest

log = logging.getLogger("lingjie")

RESUME_CONFIG = "resume-config.yaml"  # the config a resumed run's launched workers read


def run_job(cfg: dict[str, Any], config_yaml: str) -> Path:
    """Run the job described by the resolved config ``cfg``; returns the run directory."""
    fresh = (cfg.get("paths") or {}).get("run_dir")
    config_yaml = config_at_rest(cfg)  # what is written down holds no secret (trainer.redaction)
    try:
        spec = validate(cfg)
        setup_omp(spec)
        work = _plan(spec, RunDir(spec.root.paths.run_dir), config_yaml)
    except Exception:
        if fresh:
            remove_fresh_dir(Path(fresh))
        raise
    return run_marking_failure(work)


def run_marking_failure(work: Callable[[], Path]) -> Path:
    """Run ``work``; when it raises, each run dir this process holds gets ``FAILED`` with the
    error line (or is removed when nothing but logs was written), then the error propagates
    for the CLI to print. KeyboardInterrupt is no failure: the run stays resumable."""
    try:
        return work()
    except Exception as exc:
        line = error_line(exc)
        for root in held_runs():
            remove_fresh_dir(root)
            if root.is_dir():
                try:
                    atomic_write_bytes(RunDir(root).failed_marker, (line.strip() + "\n").encode())
                except OSError:
                    log.warning("could not write FAILED into %s", root)
        raise


def error_line(exc: Exception) -> str:
    """The one line FAILED and run_info.json record for ``exc``."""
    return (str(exc) if isinstance(exc, LingjieError) else f"{type(exc).__name__}: {exc}").strip()


def recorded(run: RunDir, mode: str, work: Callable[[], Path]) -> Callable[[], Path]:
    """``work`` recording itself in ``run``'s run_info.json (:mod:`trainer.run_info`): running,
    then finished or failed with the error line. A KeyboardInterrupt (or a kill) leaves running."""
    def go() -> Path:
        run_info.start(run, mode)
        try:
            out = work()
        except Exception as exc:
            run_info.finish(run, "failed", error_line(exc))
            raise
        run_info.finish(run, "finished")
        return out
    return go


def _plan(spec: Any, run: RunDir, config_yaml: str) -> Callable[[], Path]:
    """Every check that may refuse the command, then the work itself (not yet started)."""
    root = spec.root
    mode = root.trainer.mode
    hw = root.hardware
    inside_worker = os.environ.get("LINGJIE_WORKER") == "1"
    if hw.launcher == "k8s_serving" and not inside_worker:
        return _plan_serving(spec, run, config_yaml)
    if mode == "train" and hw.launcher == "k8s" and not inside_worker:
        from trainer.launch.k8s import render_and_maybe_submit

        # run_info.json records the submission (the pods' own runs record themselves)
        return recorded(run, "train:k8s", lambda: render_and_maybe_submit(spec, run, config_yaml))
    from trainer.domains import require_frameworks

    # the manifests for Kubernetes need no framework here (the pods' image has it); every
    # other job imports the backend in this process or in the workers it launches
    exports = mode in ("export", "stream") or (mode == "train" and root.trainer.export.enabled)
    require_frameworks(root.domain, root.trainer.backend, root.trainer.export.format if exports else None)
    if mode == "train":
        from trainer.tracking import require_trackers

        require_trackers(root)  # logger.mlflow without mlflow: one line, before a run dir exists
    if mode == "train" and hw.launcher in ("torchrun", "tf_multiworker") and not inside_worker:
        return _plan_launch(spec, run, config_yaml)
    from trainer import lifecycle
    from trainer.domains import domain_module

    domain = domain_module(root.domain)
    extra_modes = getattr(domain, "EXTRA_MODES", {})
    if mode in extra_modes:  # e.g. rec's stream mode (online training from Kafka)
        return recorded(run, mode, lambda: extra_modes[mode](spec, run, config_yaml))
    recipe = domain.recipe(spec)
    if mode == "train":
        run, resumed = resolve_run(spec, run)
        lifecycle.check_resumable(recipe, run, resumed)
        return recorded(run, mode, lambda: lifecycle.train(recipe, run, config_yaml, resumed))
    claim_run(run, False)
    return recorded(run, mode, lambda: lifecycle.run_checkpoint_mode(recipe, run, config_yaml))


def _plan_serving(spec: Any, run: RunDir, config_yaml: str) -> Callable[[], Path]:
    """hardware=k8s_serving renders (and maybe applies) the serving manifests, whatever it would
    otherwise train: recorded as mode ``serve:k8s``. Why not a trainer.mode: what it does is
    where the model runs (the hardware), like k8s training; a mode other than the default train
    is refused, since evaluating or exporting is not what would happen."""
    mode = spec.root.trainer.mode
    if mode != "train":
        raise ConfigError("trainer.mode", f"hardware=k8s_serving renders serving manifests and runs nothing here; "
                          f"trainer.mode={mode} would not run: drop it (or pick another hardware)")
    from trainer.launch.k8s_serving import render_and_maybe_submit

    return recorded(run, "serve:k8s", lambda: render_and_maybe_submit(spec, run, config_yaml))


def _plan_launch(spec: Any, run: RunDir, config_yaml: str) -> Callable[[], Path]:
    """The launcher owns (locks) the run; its workers are children and use it."""
    root = spec.root
    if root.trainer.backend != ("torch" if root.hardware.launcher == "torchrun" else "tf"):
        if root.hardware.launcher == "torchrun":
            raise ConfigError("hardware.launcher", "torchrun launches torch workers; for trainer.backend=tf use "
                              "hardware=tf_multiworker")
        raise ConfigError("hardware.launcher", "tf_multiworker launches TF workers; use trainer.backend=tf "
                          "(or hardware=ddp_cpu for torch)")
    run, resumed = resolve_run(spec, run)
    if resumed:
        from trainer import lifecycle
        from trainer.domains import domain_module

        lifecycle.check_resumable(domain_module(root.domain).recipe(spec), run, resumed)
    return recorded(run, "train", lambda: _launch(spec, run, config_yaml, resumed))


def _launch(spec: Any, run: RunDir, config_yaml: str, resumed: bool) -> Path:
    """Start the workers on the distributed engine the hardware profile names; wait for them."""
    hw = spec.root.hardware
    workers_config = run.config
    if resumed and run.config.exists():
        # a resumed run keeps the config.yaml it was trained with; the workers get this
        # command's (the checks allowed only differences that do not shape the model)
        workers_config = run.root / RESUME_CONFIG
        atomic_write_bytes(workers_config, config_yaml.encode())
    else:
        write_config(run, config_yaml)
    if hw.launcher == "torchrun":
        from trainer.launch.torchrun import launch_torchrun

        launch_torchrun(hw, run.root, workers_config, resumed)
    else:
        from trainer.launch.tf_multiworker import launch_tf_workers

        launch_tf_workers(hw, run.root, workers_config, resumed)
    if run.metrics.exists():
        from trainer.loop import format_metrics

        final = json.loads(run.metrics.read_text()).get("final", {})
        log.info("final: %s", format_metrics(final))
    return run.root
