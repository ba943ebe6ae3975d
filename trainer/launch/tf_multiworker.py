"""TF MultiWorkerMirroredStrategy jobs on this machine: one process per TF worker.

Worker ``i`` of ``hardware.num_workers`` runs ``python -m trainer.worker`` with its own
TF_CONFIG (a cluster of free 127.0.0.1 ports, task ``worker:i``; worker 0 is the chief and the
only one that writes the run directory). Each worker's stdout/stderr go to
``<run_dir>/logs/worker-<i>.log`` and are echoed here with a ``[worker<i>]`` prefix. When a
worker fails, the others are stopped (a collective op would wait for it forever) and the error
shows the failing worker's log tail.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from lingjie.errors import ConfigError, LingjieError
from trainer.launch.ports import free_port

log = logging.getLogger("lingjie.launch")

STOP_GRACE_S = 10.0


def check_cores(hw: Any) -> None:
    cores = os.cpu_count() or 1
    if hw.num_workers > cores:
        raise ConfigError("hardware.num_workers", f"{hw.num_workers} TF workers requested but this machine has "
                          f"{cores} CPU core(s); use at most {cores}")


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _pump(src: IO[str], sink: IO[str], log_file: IO[str], lock: threading.Lock, prefix: str) -> None:
    for line in iter(src.readline, ""):
        with lock:
            log_file.write(line)
            log_file.flush()
        sink.write(prefix + line)
        sink.flush()
    src.close()


def launch_tf_workers(hw: Any, run_dir: Path, config_path: Path, resume: bool) -> None:
    """Start ``hw.num_workers`` TF workers for the run in ``run_dir``; wait until all succeed."""
    check_cores(hw)
    n = hw.num_workers
    ports = _free_ports(n)
    logs = Path(run_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "trainer.worker", "--config", str(config_path), "--run-dir", str(run_dir)]
    if resume:
        cmd.append("--resume")
    threads = str(hw.threads or max(1, (os.cpu_count() or 1) // n))
    log.info("launching %d TF workers (MultiWorkerMirroredStrategy, ports %s), logs in %s", n,
             ",".join(map(str, ports)), logs)
    procs: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    files: list[IO[str]] = []
    try:
        for i in range(n):
            env = {**os.environ, "TF_CONFIG": tf_config(ports, i), "LINGJIE_BACKEND": "tf", "LINGJIE_WORKER": "1",
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
            env.pop("WORLD_SIZE", None)  # a torch leftover would make the worker think it is a torch rank
            fh = open(logs / f"worker-{i}.log", "w", encoding="utf-8")
            files.append(fh)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    bufsize=1, errors="replace")
            procs.append(proc)
            lock = threading.Lock()
            for src, sink in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
                t = threading.Thread(target=_pump, args=(src, sink, fh, lock, f"[worker{i}] "), daemon=True)
                t.start()
                pumps.append(t)
        failed = _wait(procs)
        if failed is not None:
            _stop(procs)
    except BaseException:  # Ctrl-C or an error here: never leave workers behind
        _stop(procs)
        raise
    finally:
        for t in pumps:
            t.join(timeout=5)
        for fh in files:
            fh.close()
    if failed is not None:
        i, code = failed
        tail = _log_tail(logs / f"worker-{i}.log")
        raise LingjieError(f"a training worker failed: worker {i} exited with code {code}"
                           + (f"; its log ends with:\n{tail}" if tail else ""))


def _wait(procs: list[subprocess.Popen], settle_s: float = 2.0) -> tuple[int, int] | None:
    """Wait until every worker exits 0 (None) or one fails: (its index, its exit code).

    When one fails, its peers often fail right after it (their collective ops lose it); the
    worker to blame is the one that exited with Lingjie's user-error code 2 within
    ``settle_s`` seconds, else the first to fail."""
    while True:
        running = False
        for i, p in enumerate(procs):
            code = p.poll()
            if code is None:
                running = True
            elif code != 0:
                deadline = time.time() + settle_s
                while time.time() < deadline and any(q.poll() is None for q in procs):
                    if any(q.poll() == 2 for q in procs):
                        break
                    time.sleep(0.05)
                user = [j for j, q in enumerate(procs) if q.poll() == 2]
                return (user[0], 2) if user else (i, code)
        if not running:
            return None
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the workers still running, then SIGKILL those that outlive the grace period."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + STOP_GRACE_S
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])
