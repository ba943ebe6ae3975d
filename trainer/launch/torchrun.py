"""torch.distributed jobs through torchrun's elastic launcher API (gloo on CPU, nccl on GPU).

The agent starts ``nproc_per_node`` workers (``python -m trainer.worker``), restarts the whole
group up to ``max_restarts`` times when one dies (workers then resume from the run's last
checkpoint), and writes each worker's stdout/stderr under ``<run_dir>/logs``; a failure ends
in one error that shows the failing worker's log tail.
"""
from __future__ import annotations

import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from lingjie.errors import ConfigError, LingjieError
from trainer.launch.ports import check_port_free, free_port

log = logging.getLogger("lingjie.launch")


def check_devices(hw: Any) -> None:
    """nproc larger than the devices there are is a setup error, not a hang."""
    if hw.device == "cuda":
        import torch

        n = torch.cuda.device_count()
        if hw.nproc_per_node > n:
            raise ConfigError("hardware.nproc_per_node", f"{hw.nproc_per_node} processes requested but this machine "
                              f"has {n} CUDA device(s)")
    else:
        cores = os.cpu_count() or 1
        if hw.nproc_per_node > cores:
            raise ConfigError("hardware.nproc_per_node", f"{hw.nproc_per_node} processes requested but this machine "
                              f"has {cores} CPU core(s); use at most {cores}")


def launch_torchrun(hw: Any, run_dir: Path, config_path: Path, resume: bool) -> None:
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_devices(hw)
    if hw.master_port:
        check_port_free(hw.master_port)
    port = hw.master_port or free_port()
    logs = run_dir / "logs"
    config = LaunchConfig(
        min_nodes=hw.nnodes, max_nodes=hw.nnodes, nproc_per_node=hw.nproc_per_node,
        run_id=f"lingjie-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
        rdzv_endpoint=f"{hw.master_addr}:{port}", max_restarts=hw.max_restarts, monitor_interval=0.5,
        start_method="spawn", logs_specs=DefaultLogsSpecs(log_dir=str(logs), redirects=Std.ALL, tee=Std.ALL),
    )
    args = ["-m", "trainer.worker", "--config", str(config_path), "--run-dir", str(run_dir)]
    if resume:
        args.append("--resume")
    os.environ["LINGJIE_WORKER"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", str(hw.threads or max(1, (os.cpu_count() or 1) // hw.nproc_per_node)))
    log.info("launching %d x %d torch workers (gloo/nccl, max_restarts=%d), logs in %s",
             hw.nnodes, hw.nproc_per_node, hw.max_restarts, logs)
    try:
        elastic_launch(config, entrypoint=sys.executable)(*args)
    except ChildFailedError as exc:
        raise LingjieError(f"a training worker failed: {_failure_summary(exc, logs)}") from None
    finally:
        os.environ.pop("LINGJIE_WORKER", None)


def _failure_summary(exc: Any, logs: Path) -> str:
    rank, failure = exc.get_first_failure()
    tail = _log_tail(logs, rank)
    return f"rank {rank} exited with code {failure.exitcode}" + (f"; its log ends with:\n{tail}" if tail else "")


def _log_tail(logs: Path, rank: int, lines: int = 25) -> str:
    found = sorted(logs.glob(f"**/attempt_*/{rank}/stderr.log"), key=lambda p: p.stat().st_mtime)
    if not found:
        return ""
    text = found[-1].read_text(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])
