"""Stage timing and the critical-path report (issue 7, item 1): the arithmetic, and a real CLI
run of each backend that prints it and writes it into metrics.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHRINK, run_cli
from trainer.timing import StageClock, critical_path, format_report


def _clock(seconds: dict[str, float], sampled: int = 10) -> StageClock:
    clock = StageClock(1)
    clock.sampled = sampled
    clock.sampled_seconds.update(seconds)
    return clock


def test_step_bound_report() -> None:
    clock = _clock({"h2d": 0.01, "embedding": 0.02, "dense": 0.06, "optimizer": 0.01})
    r = critical_path(steps=10, wall_s=0.12, step_s=0.10, wait_s=0.005, clock=clock,
                      loader_stats={"read_s": 0.02, "transform_s": 0.03, "batches": 10})
    ms = r["ms_per_batch"]
    assert r["bound"] == "dense" and r["bound_side"] == "train step"
    assert ms["dense"] == pytest.approx(6.0) and ms["embedding"] == pytest.approx(2.0)
    assert ms["wait"] == pytest.approx(0.5) and ms["loop"] == pytest.approx(1.5)
    assert r["overlap"] == pytest.approx(0.9)  # 0.5 ms waited of 5 ms of input work
    consumer = sum(v for k, v in ms.items() if k not in ("read", "transform"))
    assert consumer == pytest.approx(12.0)  # the step stages + wait + loop add up to the wall time
    assert "bound by 'dense'" in format_report(r)


def test_input_bound_report_and_sampled_scaling() -> None:
    # sampled steps saw 2:1 dense:optimizer; the wall time of all steps is what is scaled
    clock = _clock({"dense": 0.2, "optimizer": 0.1}, sampled=1)
    r = critical_path(steps=10, wall_s=0.5, step_s=0.03, wait_s=0.46, clock=clock,
                      loader_stats={"read_s": 0.4, "transform_s": 0.1, "batches": 10})
    assert r["bound"] == "read" and r["bound_side"].startswith("input")
    assert r["ms_per_batch"]["dense"] == pytest.approx(2.0)
    assert r["ms_per_batch"]["optimizer"] == pytest.approx(1.0)
    assert r["overlap"] == pytest.approx(0.08)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_cli_run_reports_the_critical_path(tmp_path: Path, data_dir: Path, backend: str) -> None:
    run = tmp_path / backend
    proc = run_cli(["+experiment=movielens_deepfm", *SHRINK, "trainer.export.enabled=false",
                    f"trainer.backend={backend}", f"hydra.run.dir={run}"], cwd=tmp_path)
    cp = json.loads((run / "metrics.json").read_text())["critical_path"]
    stages = {"torch": {"h2d", "embedding", "dense", "optimizer", "host"}, "tf": {"h2d", "step", "host"}}[backend]
    ms = cp["ms_per_batch"]
    assert stages | {"read", "transform", "wait", "loop"} <= set(ms)
    assert cp["steps"] == 3000 // 256  # 12 batches; the first (tracing) is reported apart
    assert cp["first_step_s"] > 0 and cp["samples_per_sec"] > 0
    assert cp["bound"] in ms and 0.0 <= cp["overlap"] <= 1.0
    wall_ms = 1e3 * cp["wall_s"] / cp["steps"]
    assert sum(v for k, v in ms.items() if k not in ("read", "transform")) == pytest.approx(wall_ms, rel=1e-3)
    assert "critical path over" in proc.stdout + proc.stderr
