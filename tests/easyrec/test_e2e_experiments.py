"""Every shipped experiment, shrunk to seconds, through the real CLI: the run directory holds
the resolved config, metrics, checkpoints, TensorBoard events, feature state and the export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHRINK, run_cli

# recommendation experiments (both backends); vision / text domains have their own e2e tests
EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[2] / "configs" / "experiment").glob("*.yaml")
                     if (yaml.safe_load(p.read_text()) or {}).get("domain", "rec") == "rec")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "tf"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_end_to_end(experiment: str, backend: str, tmp_path: Path, data_dir: Path) -> None:
    if backend == "tf" and experiment.endswith("_dynamic"):
        pytest.skip("dynamic embedding tables are torch-only (backend=tf is a config error, tested in "
                    "tests/easyrec/test_dynamic_table.py)")
    run = tmp_path / "run"
    proc = run_cli([f"+experiment={experiment}", *SHRINK, f"trainer.backend={backend}", f"hydra.run.dir={run}"],
                   cwd=tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run}"
    for name in ("config.yaml", "metrics.json", "feature_state.json", "DONE", "export/meta.json",
                 "export/feature_state.json"):
        assert (run / name).exists(), name
    suffix = "pt" if backend == "torch" else "tfckpt"
    assert list((run / "checkpoints").glob(f"epoch-*.{suffix}"))
    assert (run / "export" / ("saved_model" if backend == "tf" else "model.torchscript.pt")).exists()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    final = metrics["final"]
    assert metrics["finished"] and metrics["steps"] > 0 and metrics["backend"] == backend
    assert final["train/samples_per_sec"] > 0
    if experiment == "movielens_dssm":
        assert 0.0 <= final["eval/recall@10"] <= final["eval/recall@50"] <= 1.0
    else:
        for key in ("train/auc", "eval/auc", "eval/logloss"):
            assert 0.0 < final[key] < 2.0, key
        if experiment.startswith("movielens"):
            assert 0.0 < final["eval/gauc"] < 1.0
    if experiment == "movielens_mmoe":
        assert final["eval/rating/mse"] > 0 and "eval/like/auc" in final
