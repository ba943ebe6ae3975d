"""Callbacks from YAML and from $LINGJIE_CALLBACKS, run by the real CLI on shrunk MovieLens."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHRINK, run_cli

TARGET = "tests.trainer.callback_probe.Recorder"


def _hooks(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_yaml_callback_sees_every_hook_in_order(data_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "hooks.jsonl"
    run = tmp_path / "run"
    run_cli(["+experiment=movielens_deepfm", *SHRINK, "trainer.epochs=2", "data.limit_train_rows=1024",
             f"trainer.callbacks=[{{_target_:{TARGET},path:'{rec}'}}]", f"hydra.run.dir={run}"], cwd=tmp_path)
    hooks = _hooks(rec)
    names = [h["hook"] for h in hooks]
    assert names[0] == "fit_start" and names[-2:] == ["fit_end", "run_end"]
    assert names.count("train_step") == 8  # 1024 rows / batch 256, two epochs
    assert [h["epoch"] for h in hooks if h["hook"] == "epoch_end"] == [1.0, 2.0]
    # each epoch's checkpoint is announced before its epoch_end, at the epoch's last step
    ckpts = [h for h in hooks if h["hook"] == "checkpoint"]
    assert [c["name"] for c in ckpts if c["name"].startswith("epoch")] == ["epoch-0001.pt", "epoch-0002.pt"]
    assert names.index("checkpoint") < names.index("epoch_end")
    assert hooks[-1]["done"] is True  # on_run_end comes after the DONE marker
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["recorder_epochs"] == 2  # loop.summary reaches metrics.json


@pytest.mark.slow
def test_env_callback_can_stop_the_fit(data_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "hooks.jsonl"
    run = tmp_path / "run"
    env = {"LINGJIE_CALLBACKS": json.dumps([{"_target_": TARGET, "path": str(rec), "stop_at_step": 3}])}
    run_cli(["+experiment=movielens_deepfm", *SHRINK, "trainer.epochs=3", f"hydra.run.dir={run}"], cwd=tmp_path,
            env=env)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["stopped_early"] is True and metrics["epochs_completed"] == 1
    assert [h["hook"] for h in _hooks(rec)].count("train_step") == 3


@pytest.mark.parametrize("callbacks, env, where", [
    ("[{_target_:no_such_module.Thing}]", None, "trainer.callbacks[0]._target_"),
    ("[{_target_:tests.trainer.callback_probe.NotACallback}]", None, "trainer.callbacks[0]._target_"),
    ("[{path:x}]", None, "trainer.callbacks[0]"),
    ("[]", "not json", "LINGJIE_CALLBACKS"),
])
def test_bad_callback_is_one_clear_error(data_dir: Path, tmp_path: Path, callbacks: str, env: str | None,
                                         where: str) -> None:
    proc = run_cli(["+experiment=movielens_deepfm", *SHRINK, "data.limit_train_rows=256",
                    f"trainer.callbacks={callbacks}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                   env={"LINGJIE_CALLBACKS": env} if env else None, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and where in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
