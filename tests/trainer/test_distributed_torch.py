"""torch DDP through torchrun's elastic launcher (gloo, 2 CPU processes), on real data."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

DDP = ["+experiment=movielens_deepfm", "hardware=ddp_cpu", "hardware.nproc_per_node=2",
       "trainer.progress_bar=false", "data.limit_eval_rows=6000"]


@pytest.mark.slow
def test_ddp_trains_and_gathered_eval_equals_single_process_eval(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "ddp"
    proc = run_cli([*DDP, "data.limit_train_rows=20000", "trainer.epochs=2", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["finished"]
    assert metrics["final"]["eval/rows"] == 6000  # every eval row, gathered from both ranks
    assert (run / "DONE").exists() and (run / "export" / "meta.json").exists()
    assert sorted(p.name for p in (run / "logs").rglob("stderr.log"))  # per-worker logs kept
    # the same checkpoint evaluated by one process gives the same numbers
    single = tmp_path / "single"
    run_cli(["+experiment=movielens_deepfm", "trainer.mode=evaluate", "trainer.progress_bar=false",
             "data.limit_eval_rows=6000", f"trainer.evaluate.checkpoint={run}", f"hydra.run.dir={single}"],
            cwd=tmp_path)
    got = json.loads((single / "metrics.json").read_text())["final"]
    for key in ("eval/auc", "eval/gauc", "eval/logloss"):
        assert got[key] == pytest.approx(metrics["final"][key], abs=1e-6), key


def _worker_pids(run: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "trainer.worker" in cmd and str(run) in cmd:
            pids.append(int(proc.name))
    return sorted(pids)


@pytest.mark.slow
def test_killed_worker_restarts_group_from_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "elastic"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # 16k rows over 2 ranks / 256 = 32 steps per epoch; step checkpoints every 10 steps
    args = [*DDP, "hardware.max_restarts=1", "data.limit_train_rows=16000", "data.batch_size=256",
            "trainer.epochs=2", "trainer.checkpoint.every_n_steps=10", "trainer.timing.enabled=false",
            "trainer.export.enabled=false", f"hydra.run.dir={run}"]
    launcher = subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((run / "checkpoints").glob("step-00000020.pt")):
        time.sleep(0.02)
    pids = _worker_pids(run)
    assert len(pids) == 2, pids
    os.kill(pids[-1], signal.SIGKILL)
    out, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, out[-4000:]
    assert "resumed from step-" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["epochs_completed"] == 2
    assert (run / "DONE").exists()


def test_port_in_use_and_too_many_processes_are_clear_errors(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli([*DDP, f"hardware.master_port={port}", f"hydra.run.dir={tmp_path / 'a'}"], cwd=tmp_path,
                       check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"port {port}" in proc.stderr and "hardware.master_port" in proc.stderr
    cores = os.cpu_count() or 1
    proc = run_cli([*DDP, f"hardware.nproc_per_node={cores + 1}", f"hydra.run.dir={tmp_path / 'b'}"],
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "hardware.nproc_per_node" in proc.stderr


@pytest.mark.slow
def test_worker_dying_at_start_shows_its_log_tail(tmp_path: Path) -> None:
    proc = run_cli([*DDP, "data.dataset=null", f"data.train_path={tmp_path / 'missing.parquet'}",
                    "data.eval_path=null", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "a training worker failed: rank" in proc.stderr
    assert "missing.parquet" in proc.stderr  # from the worker's own log
