"""The second-wave ranking models (xDeepFM, AutoInt, DLRM, MaskNet): their config rules, and
end to end on MovieLens,
shrunk to seconds: torch through the real CLI, TF in this process (``trainer.job.run_job``,
no second TF start-up per model); each run's export is loaded back with the serving loader
(``easyrec.serving.ExportedModel``) and must score the test rows as the run's own model does.

Unit-level checks of the same models (gradients, overfit, TorchScript, torch.export with a
dynamic batch, SavedModel, mixed precision, checkpoints) come from their configs in
``tests/easyrec/zoo_helpers.py``; full-data AUCs are in the README's quality table.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from easyrec.models import specs
from lingjie.errors import ConfigError
from tests.conftest import SHRINK, compose, run_cli
from tests.easyrec.zoo_helpers import FEATURES, make_config

MODELS = ["xdeepfm", "autoint", "dlrm", "masknet"]
QUIET = [*SHRINK, "hardware.threads=1", "logger.tensorboard=false"]
ROWS = 300  # test rows scored through the export
# the CIN's 1x1 convolution dominates xDeepFM's step (~6x DCNv2's): narrower maps for the test
SMALLER = {"xdeepfm": ["model.cin_layer_sizes=[16,16]"]}


@pytest.mark.parametrize("name,change,match", [
    ("xdeepfm", {"cin_layer_sizes": [7, 4]}, "even sizes"),
    ("xdeepfm", {"cin_layer_sizes": []}, "at least one layer"),
    ("xdeepfm", {"feature_groups": {"wide": ["user_id"], "deep": ["user_id", "tags"]}},
     "one embedding dim"),
    ("autoint", {"hidden_units": []}, "dense features"),
    ("dlrm", {"top_units": [0]}, "width must be > 0"),
    ("dlrm", {"feature_groups": {"deep": ["age"]}}, "at least one sparse"),
])
def test_config_rules_name_the_knob(name: str, change: dict, match: str) -> None:
    cfg = make_config(name)
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(ConfigError, match=match):
        cfg.check(FEATURES)


def test_masknet_modes_and_autoint_attention_only_build_on_both_backends() -> None:
    """Serial vs parallel widths, and AutoInt without its MLP (fields only)."""
    fields = {n: FEATURES[n] for n in ("user_id", "item_id", "city")}
    auto = specs.AutoIntConfig(feature_groups={"deep": list(fields)}, hidden_units=[],
                               attention_layers=1, attention_heads=1, attention_dim=4)
    for backend in ("torch", "tf"):
        model = specs.build_model(auto, fields, backend=backend)
        assert not model.use_mlp
        for mode, width in (("serial", 8), ("parallel", 16)):
            cfg = make_config("masknet")
            cfg.mode = mode
            assert specs.build_model(cfg, FEATURES, backend=backend).blocks.output_dim == width


def _final(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["steps"] == 12, metrics  # 3000 rows / 256
    return metrics["final"]


def _restored_scores(run: Path, table) -> np.ndarray:
    """The run's own model (restored from its last checkpoint) on ``table``."""
    from easyrec.restore import restore
    from trainer.run_dir import RunDir

    restored = restore(RunDir(run).latest_checkpoint())
    return np.asarray(restored.engine.predict(
        restored.state.transform(table, with_labels=False))["like"])


def _check_export(run: Path, data_dir: Path, program: str) -> None:
    from easyrec.serving import ExportedModel

    table = pq.read_table(data_dir / "movielens-100k" / "test.parquet").slice(0, ROWS)
    assert (run / "export" / program).exists()
    got = ExportedModel(run / "export").predict(table.to_pylist())["like"]
    assert got.shape == (ROWS,) and np.all((got > 0) & (got < 1))
    np.testing.assert_allclose(got, _restored_scores(run, table), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_torch_cli_run_and_its_export(model: str, tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "run"
    run_cli([f"+experiment=movielens_{model}", *QUIET, *SMALLER.get(model, []),
             f"hydra.run.dir={run}"], cwd=tmp_path)
    final = _final(run)
    assert final["eval/auc"] > 0.55 and final["eval/logloss"] < 0.8, final
    _check_export(run, data_dir, "model.pt2")


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_tf_run_in_process_and_its_saved_model(model: str, tmp_path: Path, data_dir: Path
                                               ) -> None:
    from trainer.job import run_job

    run = tmp_path / "run"
    # hardware.threads=null: TF fixes its pools when it starts (maybe earlier in this process,
    # at another count) and refuses a change afterwards
    cfg = compose([f"+experiment=movielens_{model}", *QUIET, *SMALLER.get(model, []),
                   "trainer.backend=tf", "hardware.threads=null",
                   f"paths.run_dir={run}", f"paths.output_root={tmp_path / 'out'}"])
    assert Path(run_job(cfg, json.dumps(cfg))) == run
    final = _final(run)
    assert final["eval/auc"] > 0.55 and final["eval/logloss"] < 0.8, final
    _check_export(run, data_dir, "saved_model")
