"""Feature selection: hard-concrete gates via hooks, and a selection snippet that trains."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHRINK, run_cli

torch = pytest.importorskip("torch")

# every trainer run here: one intra-op thread, no per-stage timing table (nothing here reads it)
QUICK = ["hardware.threads=1", "trainer.timing.enabled=false"]


def test_gates_scale_feature_contributions_through_hooks():
    from automl.selection.gates import attach_gates
    from easyrec.features.pipeline import FeaturePipeline
    from easyrec.models.specs import build_model
    from easyrec.schema import build_model_config as model_config
    import pyarrow as pa

    table = pa.table({"u": [1, 2, 3, 1], "x": [0.5, 1.0, 2.0, 3.0], "y": [1, 0, 1, 0]})
    pipe = FeaturePipeline({"u": {"type": "id"}, "x": {"type": "raw"}}, {"y": {"column": "y"}})
    pipe.fit([table.to_batches()[0]])
    cfg = model_config({"name": "deepfm", "feature_groups": {"wide": ["u", "x"], "deep": ["u", "x"]},
                        "tasks": [{"name": "y", "label": "y", "type": "binary", "loss": "bce"}],
                        "hidden_units": [4]}, "torch")
    model = build_model(cfg, pipe.feature_infos(), backend="torch")
    from trainer.torch_backend.tensors import to_inputs

    inputs = to_inputs(pipe.transform(table), torch.device("cpu"))
    gates, handles = attach_gates(model, ["u", "x"])
    gates.eval()
    with torch.no_grad():
        gates.log_alpha.fill_(-20.0)  # every gate closed: the model sees no feature at all
        closed = model(inputs)["y"]
        assert torch.allclose(closed, closed[0].expand_as(closed))
        gates.log_alpha.fill_(20.0)  # open: same as without gates
        opened = model(inputs)["y"]
    for h in handles:
        h.remove()
    with torch.no_grad():
        assert torch.allclose(opened, model(inputs)["y"])
    assert float(gates.open_probability()[0]) > 0.99


@pytest.mark.slow
def test_selection_snippet_trains(tmp_path, data_dir):
    out = tmp_path / "sel"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shrink = [*SHRINK, "trainer.export.enabled=false", f"paths.output_root={tmp_path / 'runs'}", *QUICK]
    proc = subprocess.run([sys.executable, "-m", "automl", "select", "+experiment=movielens_deepfm", *shrink,
                           "--top-k", "4", "--out", str(out)], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sel = json.loads((out / "selection.json").read_text())
    assert len(sel["selected"]) == 4 and set(sel["gates"]) == set(sel["permutation_auc_drop"])
    assert (out / "feature_rankings.png").stat().st_size > 1000
    command = [ln for ln in proc.stdout.splitlines() if ln.startswith("train with: ")][-1]
    args = shlex.split(command.split(": ", 1)[1])[3:]
    run = run_cli(args, cwd=tmp_path)
    run_dir = Path(run.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    import yaml

    groups = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["feature_groups"]
    used = {n for names in groups.values() for n in names}
    assert used == set(sel["selected"])  # the model trained on exactly the selected features
    assert 0.0 < json.loads((run_dir / "metrics.json").read_text())["final"]["eval/auc"] < 1.0


@pytest.mark.slow
def test_selection_search_picks_top_k_with_optuna_and_its_config_trains(tmp_path, data_dir):
    """`--search`: Optuna tries subset sizes K (one real trainer run each) and keeps the best K."""
    import yaml

    out = tmp_path / "sel"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shrink = [*SHRINK, "trainer.export.enabled=false", f"paths.output_root={tmp_path / 'runs'}", *QUICK]
    proc = subprocess.run([sys.executable, "-m", "automl", "select", "+experiment=movielens_deepfm", *shrink,
                           "--search", "--trials", "2", "--out", str(out)], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sel = json.loads((out / "selection.json").read_text())
    search = {int(k): v for k, v in sel["search"].items()}
    searched = {k: v for k, v in search.items() if (out / "search" / f"k{k}").is_dir()}
    assert 8 in search and searched, sel  # the full set (the base model) and at least one trained subset
    for k in searched:  # each tried K trained a model on exactly the top K of the ranking
        snippet = yaml.safe_load((out / "search" / f"k{k}" / "automl" / "selected_features.yaml").read_text())
        assert {n for g in snippet["model"]["feature_groups"].values() for n in g} == set(sel["order"][:k])
        assert 0.0 < searched[k] < 1.0
    k = len(sel["selected"])
    assert sel["selected"] == sel["order"][:k] and searched.get(k) == max(searched.values()), sel
    command = [ln for ln in proc.stdout.splitlines() if ln.startswith("train with: ")][-1]
    run = run_cli(shlex.split(command.split(": ", 1)[1])[3:], cwd=tmp_path)
    run_dir = Path(run.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    groups = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["feature_groups"]
    assert {n for names in groups.values() for n in names} == set(sel["selected"])
    assert 0.0 < json.loads((run_dir / "metrics.json").read_text())["final"]["eval/auc"] < 1.0
