"""1 vs 2 processes (torch DDP over gloo) on this machine, same data and config, one invocation.

    .venv/bin/python benchmarks/bench_ddp.py [--epochs 2] [--experiment movielens_deepfm]

Prints a table of wall time, train samples/s (all ranks together) and test AUC. On a 2-core
machine two processes share the same two cores, so this measures the overhead of DDP rather
than a speed-up; it is reported as measured.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], run_dir: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainer", *args, "trainer.progress_bar=false",
                    "trainer.export.enabled=false", f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, json.loads((run_dir / "metrics.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="movielens_deepfm")
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="lingjie-ddp-"))
    base = [f"+experiment={a.experiment}", f"trainer.epochs={a.epochs}"]
    rows = []
    for name, extra in (("1 process (hardware=cpu)", []),
                        ("1 process, 1 thread", ["hardware.threads=1"]),
                        ("2 processes DDP (hardware=ddp_cpu, 1 thread each)", ["hardware=ddp_cpu",
                                                                               "hardware.nproc_per_node=2"])):
        wall, m = run(base + extra, out / str(len(rows)))
        sps = [h["train/samples_per_sec"] for h in m["history"]]
        rows.append((name, wall, max(sps), m["final"]["eval/auc"]))
    print("| setup | wall s | train samples/s (best epoch, all ranks) | test AUC |")
    print("|---|---|---|---|")
    for name, wall, sps, auc in rows:
        print(f"| {name} | {wall:.1f} | {sps:,.0f} | {auc:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
