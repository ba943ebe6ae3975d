"""Models for the rankings: a real trainer CLI run (permutation importance, subset search) and a
short in-process run of the experiment's torch model with feature gates."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainer.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[2]


def run_trainer(overrides: list[str], timeout: float = 3600) -> Path:
    """`python -m trainer OVERRIDES` in a subprocess; returns its run directory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.run([sys.executable, "-m", "trainer", *overrides, "trainer.progress_bar=false"], cwd=ROOT,
                          env=env, text=True, capture_output=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("run directory: ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"trainer failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return Path(lines[-1].split(": ", 1)[1])


def checkpoint_of(run_dir: Path) -> Path:
    ck = run_dir / "checkpoints"
    best = sorted(ck.glob("best.*"))
    if best:
        return best[0]
    latest = RunDir(run_dir).latest_checkpoint()  # the pointer validated: never a path out of the run
    if latest is None:
        raise RuntimeError(f"no checkpoint in {ck}")
    return latest


def final_metric(run_dir: Path, metric: str = "eval/auc") -> float:
    return float(json.loads((run_dir / "metrics.json").read_text())["final"][metric])


def gate_ranking(cfg: dict[str, Any], names: list[str], epochs: int = 1, penalty: float = 0.01) -> dict[str, float]:
    """Build the experiment's torch model + pipeline (fitted on train) and train it with gates."""
    import torch

    from automl.selection.gates import train_gates
    from easyrec.data import fit_pipeline, make_loader, make_pipeline
    from easyrec.models.specs import build_model
    from trainer.process import ensure_data
    from trainer.schema.validate import validate

    spec = validate(cfg)
    ensure_data(spec)
    torch.manual_seed(spec.root.seed)
    pipeline = fit_pipeline(spec, make_pipeline(spec))
    loader = make_loader(spec, pipeline, spec.root.data.train_path, train=True)
    model = build_model(spec.model, pipeline.feature_infos(), backend="torch")
    opt = spec.root.trainer.optimizer
    return train_gates(model, loader, names, epochs=epochs, penalty=penalty, dense_lr=opt.dense.lr,
                       sparse_lr=opt.sparse.lr, show_progress=spec.root.trainer.progress_bar)
