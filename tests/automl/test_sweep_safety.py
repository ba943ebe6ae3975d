"""Sweeps that share a study (issue 17): a second sweep never fails the first's running trials,
two sweeps at once lose no result, and a sweep whose trial crashed exits non-zero.

Trials run a stub `trainer` package (a file in the sweep's working directory comes first on
sys.path for `python -m trainer`), so a trial costs a Python start-up, not a training run; one
test runs the real CLI with a SIGKILL fault point in the trial.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SHRINK, run_cli

optuna = pytest.importorskip("optuna")

# scores lr; sleeps `sleep` seconds first (so two sweeps overlap); lr=crash dies of a bug, lr=bad
# is a config the trainer rejects (exit status 2: a failed trial, not a crash)
STUB_TRAINER = """import json, sys, time
from pathlib import Path

args = dict(a.split("=", 1) for a in sys.argv[1:])
time.sleep(float(args.get("sleep", 0)))
if args["lr"] == "crash":
    raise RuntimeError("a bug in the trainer")
if args["lr"] == "bad":
    print("error: config error at 'lr': expected a number", file=sys.stderr)
    sys.exit(2)
loss = float(args["lr"])
metrics = {"final": {"eval/loss": loss}, "history": [{"eval/loss": loss}], "epochs_completed": 1, "steps": 1}
(Path(args["hydra.run.dir"]) / "metrics.json").write_text(json.dumps(metrics))
"""

# one sweep process: a Sweep over lr in the working directory argv[1], study in argv[1]/sweep
SWEEP_SCRIPT = """import json, sys
from pathlib import Path
from automl.sweeper import Sweep, SweepSettings

work, n_trials, choices = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
s = SweepSettings(sweep_dir=work / "sweep", study_name="s", optimize_metric=["eval/loss"], direction=["minimize"],
                  n_trials=n_trials, params={"lr": choices}, enqueue_default=False, pruner="none", sampler="random",
                  trial_overrides=["sleep=1.5"])
sweep = Sweep(s, [], work)
sweep.run()
print(json.dumps(sweep.problems))
sys.exit(1 if sweep.problems else 0)
"""


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "trainer").mkdir(parents=True)
    (work / "trainer" / "__init__.py").write_text("")
    (work / "trainer" / "__main__.py").write_text(STUB_TRAINER)
    return work


def _sweep(work: Path, choices: list[Any], n_trials: int = 2) -> Any:
    from automl.sweeper import Sweep, SweepSettings

    s = SweepSettings(sweep_dir=work / "sweep", study_name="s", optimize_metric=["eval/loss"],
                      direction=["minimize"], n_trials=n_trials, params={"lr": choices}, enqueue_default=False,
                      pruner="none", sampler="random", trial_overrides=[])
    return Sweep(s, [], work)


def _gone_process() -> dict[str, Any]:
    """The owner record of a process that ran on this host and has exited."""
    import socket

    from automl.trial_owner import process_start

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = process_start(proc.pid)
    proc.kill()
    proc.wait()
    return {"host": socket.gethostname(), "pid": proc.pid, "start": start}


def test_a_resumed_sweep_fails_only_trials_whose_owner_is_gone(tmp_path: Path) -> None:
    from automl.trial_owner import OWNER_ATTR, is_stale, this_process

    work = _workdir(tmp_path)
    first = _sweep(work, [0.1, 0.2])
    study = first.open_study()
    me = this_process()
    owners = [me,  # a live sweep (this process)
              _gone_process(),  # a sweep that died
              {"host": "another-machine", "pid": 1, "start": 1},  # cannot be checked: left alone
              {**me, "start": (me["start"] or 0) + 12345},  # this pid, but recycled: the owner is gone
              None]  # no owner record, just asked: maybe a live sweep between ask and recording
    trials = [study.ask(first.space) for _ in owners]
    for trial, owner in zip(trials, owners):
        if owner is not None:
            trial.set_user_attr(OWNER_ATTR, owner)
    _sweep(work, [0.1, 0.2]).open_study()  # a second sweep of the same study
    states = [t.state.name for t in study.get_trials()]
    assert states == ["RUNNING", "FAIL", "RUNNING", "FAIL", "RUNNING"]
    assert study.get_trials()[1].user_attrs["error"] == "interrupted: found running when resuming"
    unowned = study.get_trials()[4]
    assert is_stale(unowned, now=unowned.datetime_start + dt.timedelta(hours=1))  # from an old sweep


def test_a_result_another_process_finished_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    sweep = _sweep(_workdir(tmp_path), [0.1, 0.2])
    study = sweep.open_study()
    trial = study.ask(sweep.space)
    study.tell(trial, state=TrialState.FAIL)  # as an old sweep did to a live sweep's trial
    sweep._tell_failed(study, trial, "exit status 1")  # used to raise UpdateFinishedTrialError
    assert len(sweep.problems) == 1 and "finished by another process" in sweep.problems[0]


def test_a_crashed_trial_is_a_problem_a_rejected_config_is_not(tmp_path: Path) -> None:
    rejected = _sweep(_workdir(tmp_path / "a"), ["bad"], n_trials=1)
    rejected.run()
    crashed = _sweep(_workdir(tmp_path / "b"), ["crash"], n_trials=1)
    study = crashed.run()
    assert rejected.problems == []  # exit status 2: the trainer rejected the config, a failed trial
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert len(crashed.problems) == 1 and crashed.problems[0].startswith("trial 0 crashed: exit status 1")


def test_two_sweeps_of_one_study_at_once_join_and_lose_nothing(tmp_path: Path) -> None:
    """The same sweep started twice: before issue 17 the second marked the first's running trial
    failed and the first died on UpdateFinishedTrialError (exit status 0)."""
    work = _workdir(tmp_path)
    script = tmp_path / "sweep_once.py"
    script.write_text(SWEEP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(script), str(work), "4", json.dumps([0.1, 0.2, 0.3])]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not (work / "sweep" / "0" / "trial.log").exists() and time.time() < deadline:
        time.sleep(0.1)  # the first sweep's trial 0 is running
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out_first = first.communicate(timeout=120)[0]
    assert first.returncode == 0, out_first
    assert second.returncode == 0, second.stdout + second.stderr
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(work / "sweep" / "optuna_journal.log"))))
    trials = study.trials
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert 4 <= len(trials) <= 5  # k sweeps started together may overshoot n_trials by k - 1
    assert len({t.user_attrs["owner"]["pid"] for t in trials}) == 2  # both sweeps ran trials


@pytest.mark.slow
def test_a_sweep_whose_trial_is_killed_exits_non_zero(tmp_path: Path, data_dir: Path) -> None:
    """The real CLI: the trial process is SIGKILLed at its first train step (LINGJIE_FAULT)."""
    cfg = tmp_path / "cfg" / "hparams_search"
    cfg.mkdir(parents=True)
    (cfg / "t.yaml").write_text("""# @package _global_
defaults:
  - override /hydra/sweeper: lingjie_optuna
hydra:
  sweep: {dir: sweep}
  sweeper: {optimize_metric: eval/auc, n_trials: 1, enqueue_default: false, pruner: none, plots: false,
            params: {trainer.optimizer.dense.lr: [0.01]}}
""")
    proc = run_cli(["-m", "+experiment=movielens_deepfm", "hparams_search=t", f"hydra.searchpath=[file://{cfg.parent}]",
                    *SHRINK], cwd=tmp_path, env={"LINGJIE_FAULT": "train_step"}, check=False)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(errors) == 1 and "trial 0 crashed: exit status -9" in errors[0], errors
