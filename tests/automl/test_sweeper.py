"""The Optuna sweeper (issue 6): real optuna, the real trainer in subprocesses, shrunk data."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SHRINK as _SHRINK, run_cli

optuna = pytest.importorskip("optuna")

# One intra-op thread per trial process (trials run beside each other or beside the sweeper on a
# 2-core machine) and no per-stage timing table: no test here reads timing.
SHRINK = [*_SHRINK, "hardware.threads=1", "trainer.timing.enabled=false"]

# trial 0 learns (lr 0.05); a lr of 1e-7 learns nothing and is pruned after epoch 1 against trial
# 0's curve; batch_size=0 is an invalid config (a failing trial). RandomSampler seed 120 draws
# (0.05,256), (1e-7,256) and, resumed (seed 120 + 2 trials), (1e-7,0), (1e-7,256).
SPACE = """# @package _global_
defaults:
  - override /hydra/sweeper: lingjie_optuna
hydra:
  sweep: {dir: sweep}
  sweeper:
    optimize_metric: eval/auc
    sampler: random
    seed: 120
    enqueue_default: false
    pruner: median
    pruner_args: {n_startup_trials: 1, n_warmup_steps: 0}
    params:
      lr: {type: categorical, choices: [0.05, 1.0e-7], paths: [trainer.optimizer.sparse.lr, trainer.optimizer.dense.lr]}
      data.batch_size: [256, 0]
"""


def _search_path(tmp_path: Path, text: str = SPACE) -> str:
    cfg = tmp_path / "cfg" / "hparams_search"
    cfg.mkdir(parents=True)
    (cfg / "t.yaml").write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'cfg'}]"

def _lr_sweep(tmp_path: Path, sweeper_lines: str) -> Any:
    """Run a 2-trial sweep of MovieLens DeepFM (2 epochs, shrunk) in ``tmp_path``: RandomSampler seed 0 over lr
    {0.05, 1e-9} (trial 0 is the config's own lr 0.05, trial 1 draws 1e-9), a median pruner
    that may prune trial 1 from its first report, plus ``sweeper_lines`` (YAML, one
    ``key: value`` a line) under ``hydra.sweeper``."""
    extra = "".join(f"    {line}\n" for line in sweeper_lines.splitlines())
    space = f"""# @package _global_
defaults:
  - override /hydra/sweeper: lingjie_optuna
hydra:
  sweep: {{dir: sweep}}
  sweeper:
    sampler: random
    seed: 0
    n_trials: 2
    pruner: median
    pruner_args: {{n_startup_trials: 1, n_warmup_steps: 0}}
{extra}    params:
      lr: {{type: categorical, choices: [0.05, 1.0e-9], paths: [trainer.optimizer.sparse.lr, trainer.optimizer.dense.lr]}}
"""
    lr = ["trainer.optimizer.sparse.lr=0.05", "trainer.optimizer.dense.lr=0.05"]
    return run_cli(["-m", "+experiment=movielens_deepfm", "hparams_search=t", _search_path(tmp_path, space), *SHRINK,
                    "trainer.epochs=2", "logger.tensorboard=false", *lr], cwd=tmp_path)



def _trials(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "trials.csv") as fh:
        return list(csv.DictReader(fh))


def test_search_space_spellings():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from automl.sweeper_space import distribution, override_value, split_arguments, targets

    assert distribution("a", {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}) == \
        FloatDistribution(1e-4, 1e-1, log=True)
    assert distribution("a", {"type": "int", "low": 1, "high": 9, "step": 2}) == IntDistribution(1, 9, step=2)
    assert distribution("a", [[256, 128], [64]]) == CategoricalDistribution(["[256,128]", "[64]"])
    assert distribution("a", "choice(8,16,32)") == CategoricalDistribution([8, 16, 32])
    assert distribution("a", "range(1,5)") == IntDistribution(1, 4)
    assert distribution("a", "tag(log, interval(0.0001, 0.1))") == FloatDistribution(1e-4, 0.1, log=True)
    fixed, space = split_arguments(["+experiment=movielens_deepfm", "model.dropout=interval(0.0,0.5)"])
    assert fixed == ["+experiment=movielens_deepfm"] and space == {"model.dropout": FloatDistribution(0.0, 0.5)}
    assert targets({"d": {"choices": [8], "paths": ["x.a", "x.b"]}, "y": [1]}) == {"d": ["x.a", "x.b"], "y": ["y"]}
    assert override_value(0.1 + 0.2) == "0.3" and override_value([1, "a"]) == "[1,a]"
    with pytest.raises(ValueError, match="not a search space"):
        distribution("a", "3")


def test_plugin_is_discovered_and_pruning_needs_a_trial(monkeypatch):
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from automl.reporting import ENV, OptunaPruning
    from lingjie.errors import ConfigError

    assert "LingjieOptunaSweeper" in [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConfigError, match="LINGJIE_OPTUNA_TRIAL.*not set"):
        OptunaPruning()
    monkeypatch.setenv(ENV, "{not json")
    with pytest.raises(ConfigError, match="LINGJIE_OPTUNA_TRIAL.*not a JSON object"):
        OptunaPruning()


def _sweep(tmp_path: Path, **settings: Any) -> Any:
    """A Sweep over lr {0.5, 0.1} optimizing eval/loss (minimize) with a median pruner that may prune
    from a trial's first report; its study is a journal file under ``tmp_path / "sweep"``."""
    from automl.sweeper import Sweep, SweepSettings

    defaults: dict[str, Any] = {"optimize_metric": ["eval/loss"], "direction": ["minimize"],
                                "params": {"lr": [0.5, 0.1]}, "enqueue_default": False,
                                "pruner_args": {"n_startup_trials": 1, "n_warmup_steps": 0}}
    s = SweepSettings(sweep_dir=tmp_path / "sweep", study_name="s", **{**defaults, **settings})
    return Sweep(s, [], tmp_path)


def _trial_process_env(tmp_path: Path, monkeypatch: Any, **settings: Any) -> tuple[Any, Any]:
    """The study of a real sweep with one complete trial (eval/loss 0.1 at every step 1..12) and
    a new trial; this process gets the environment the sweeper gives that trial's first run."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from automl.reporting import ENV
    from trainer.callbacks import ENV as CALLBACKS_ENV

    sweep = _sweep(tmp_path, **settings)
    study = sweep.open_study()
    study.add_trial(create_trial(value=0.1, params={"lr": 0.5}, distributions={"lr": CategoricalDistribution([0.5, 0.1])},
                                 intermediate_values={k: 0.1 for k in range(1, 13)}))
    trial = study.ask(sweep.space)
    env = sweep.trial_env(trial)
    monkeypatch.setenv(ENV, env[ENV])
    monkeypatch.setenv(CALLBACKS_ENV, env[CALLBACKS_ENV])
    return study, trial


def _flat_loop(tmp_path: Path, epochs: int, steps_per_epoch: int = 4) -> Any:
    """A real TrainLoop whose engine learns nothing (loss 1.0 on every train and eval batch), with
    the callbacks trainer builds from $LINGJIE_CALLBACKS."""
    import numpy as np

    from easyrec.features.batch import Batch
    from trainer.callbacks import instantiate_callbacks
    from trainer.engine import Engine
    from trainer.loop import TrainLoop
    from trainer.run_dir import RunDir
    from trainer.schema.spec import TimingSpec, TrainerSpec

    class FlatEngine(Engine):
        backend = "torch"

        def train_step(self, batch: Batch) -> tuple[float, dict[str, np.ndarray]]:
            return 1.0, {}

        def eval_step(self, batch: Batch, recall_k: list[int]) -> tuple[float, dict, dict]:
            return 1.0, {}, {}

        def predict(self, batch: Batch) -> dict[str, np.ndarray]:
            return {}

        def current_lr(self) -> float:
            return 0.0

        def save(self, run: RunDir, name: str, meta: dict[str, Any]) -> Path:
            return run.checkpoints / name  # nothing to keep: the test reads the loop, not checkpoints

        def restore(self, path: Path) -> dict[str, Any]:
            raise NotImplementedError

        def export(self, *args: Any) -> Path:
            raise NotImplementedError

        def num_parameters(self) -> int:
            return 0

    class Batches:  # a loader of ``n`` label-free batches of 8 rows per epoch
        def __init__(self, n: int) -> None:
            self.n = n

        def epoch(self, epoch: int, skip_batches: int = 0) -> Any:
            return ((i, Batch(size=8)) for i in range(skip_batches, self.n))

    run = RunDir(tmp_path / "run")
    run.create()
    spec = TrainerSpec(epochs=epochs, progress_bar=False, timing=TimingSpec(enabled=False))
    return TrainLoop(FlatEngine(), spec, Batches(steps_per_epoch), Batches(1), {}, run, steps_per_epoch, {},
                     callbacks=instantiate_callbacks([]))


def test_pruning_callback_stops_a_bad_trial_after_its_first_epoch(tmp_path, monkeypatch):
    from automl.reporting import OptunaPruning

    study, trial = _trial_process_env(tmp_path, monkeypatch)
    loop = _flat_loop(tmp_path, epochs=3)
    assert [type(cb) for cb in loop.callbacks] == [OptunaPruning]
    loop.fit()
    assert loop.progress.stopped_early and len(loop.progress.history) == 1 and loop.progress.global_step == 4
    assert loop.summary == {"pruned": True}
    assert study.trials[trial.number].intermediate_values == {1: 1.0}  # reported at step = epoch


def test_pruning_callback_reports_every_n_steps_and_stops_inside_an_epoch(tmp_path, monkeypatch):
    study, trial = _trial_process_env(tmp_path, monkeypatch, report_every_n_steps=2)
    loop = _flat_loop(tmp_path, epochs=3)
    loop.fit()
    # a mid-epoch evaluation at global step 2 pruned the trial; fit() closed epoch 1 there
    assert loop.progress.stopped_early and loop.progress.global_step == 2 and len(loop.progress.history) == 1
    assert loop.summary == {"pruned": True}
    assert study.trials[trial.number].intermediate_values == {2: 1.0}


def test_the_last_report_of_a_run_never_prunes(tmp_path, monkeypatch):
    study, trial = _trial_process_env(tmp_path, monkeypatch)
    loop = _flat_loop(tmp_path, epochs=1)
    loop.fit()
    assert not loop.progress.stopped_early and loop.progress.global_step == 4
    assert loop.summary == {"pruned": False}  # a sweep trial's metrics.json always says
    assert study.trials[trial.number].intermediate_values == {1: 1.0}


def test_trial_environment_adds_pruning_to_existing_callbacks(tmp_path, monkeypatch):
    from automl.reporting import ENV
    from lingjie.errors import ConfigError

    mine = {"_target_": "my_package.MyCallback", "every": 3}
    monkeypatch.setenv("LINGJIE_CALLBACKS", json.dumps([mine]))
    monkeypatch.setenv("LINGJIE_WORKER", "1")
    sweep = _sweep(tmp_path)
    trial = sweep.open_study().ask(sweep.space)
    env = sweep.trial_env(trial)
    assert json.loads(env["LINGJIE_CALLBACKS"]) == [mine, {"_target_": "automl.reporting.OptunaPruning"}]
    info = json.loads(env[ENV])
    assert info["study_name"] == "s" and info["number"] == trial.number and info["metric"] == "eval/loss"
    assert "LINGJIE_WORKER" not in env
    later_seed = sweep.trial_env(trial, report=False)  # no reports, no pruning; the user's callbacks stay
    assert ENV not in later_seed and json.loads(later_seed["LINGJIE_CALLBACKS"]) == [mine]
    monkeypatch.setenv("LINGJIE_CALLBACKS", "{oops")
    with pytest.raises(ConfigError, match="LINGJIE_CALLBACKS"):  # once, before any trial runs
        _sweep(tmp_path)


STUB_TRAINER = """import json, os, sys
from pathlib import Path

args = dict(a.split("=", 1) for a in sys.argv[1:])
run = Path(args["hydra.run.dir"])
(run / "env.json").write_text(json.dumps({k: os.environ.get(k) for k in ("LINGJIE_OPTUNA_TRIAL", "LINGJIE_CALLBACKS")}))
if args["lr"] == "fail":
    print("error: lr=fail is not a number")
    sys.exit(3)
loss = float(args["lr"]) + int(args.get("seed", 0)) / 100
metrics = {"final": {"eval/loss": loss}, "history": [{"eval/loss": loss}], "epochs_completed": 1, "steps": 4}
if "LINGJIE_OPTUNA_TRIAL" in os.environ:
    metrics["pruned"] = float(args["lr"]) > 0.3
(run / "metrics.json").write_text(json.dumps(metrics))
"""


def test_a_trial_trains_once_per_seed_is_pruned_on_its_first_run_or_fails_with_the_error(tmp_path):
    """The sweeper's process handling, with a stub `trainer` package (cwd comes first on sys.path
    for `python -m`): it scores lr (+ seed / 100) and prunes lr > 0.3 when it reports."""
    pkg = tmp_path / "trainer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(STUB_TRAINER)
    sweep = _sweep(tmp_path, params={"lr": [0.5, 0.1, "fail"]}, seeds=[1, 2], trial_overrides=[])
    study = sweep.open_study()
    for lr in (0.1, 0.5, "fail"):
        study.enqueue_trial({"lr": lr})
        sweep._run_trial(study, study.ask(sweep.space))
    done, pruned, failed = study.trials
    trial_dir = tmp_path / "sweep"
    assert done.state.name == "COMPLETE" and done.value == pytest.approx(0.115)  # mean of 0.11, 0.12
    assert done.user_attrs["seed_values"] == {"1": pytest.approx(0.11), "2": pytest.approx(0.12)}
    assert done.user_attrs["epochs"] == 2 and done.user_attrs["steps"] == 8
    assert done.user_attrs["overrides"] == ["lr=0.1", "seed=1"]
    first = json.loads((trial_dir / "0" / "env.json").read_text())
    second = json.loads((trial_dir / "0" / "seed_2" / "env.json").read_text())
    assert json.loads(first["LINGJIE_OPTUNA_TRIAL"])["trial_id"] == done._trial_id
    assert json.loads(first["LINGJIE_CALLBACKS"]) == [{"_target_": "automl.reporting.OptunaPruning"}]
    assert second == {"LINGJIE_OPTUNA_TRIAL": None, "LINGJIE_CALLBACKS": os.environ.get("LINGJIE_CALLBACKS")}
    assert pruned.state.name == "PRUNED" and pruned.user_attrs["epochs"] == 1
    assert not (trial_dir / "1" / "seed_2").exists()  # a pruned trial never starts its other seeds
    assert failed.state.name == "FAIL" and "seconds" in failed.user_attrs
    assert failed.user_attrs["error"] == "exit status 3 (seed 1): error: lr=fail is not a number"


@pytest.mark.slow
def test_sweep_prunes_resumes_records_failures_and_best_config_reruns(tmp_path, data_dir):
    args = ["-m", "+experiment=movielens_deepfm", "hparams_search=t", _search_path(tmp_path), *SHRINK,
            "trainer.epochs=2", "logger.tensorboard=false"]
    first = run_cli([*args, "hydra.sweeper.n_trials=2"], cwd=tmp_path)
    sweep = tmp_path / "sweep"
    assert (sweep / "optuna_journal.log").exists() and len(_trials(sweep)) == 2
    second = run_cli([*args, "hydra.sweeper.n_trials=4"], cwd=tmp_path)  # resumes: n_trials is the total
    assert "2 trial(s) so far" in second.stdout
    rows = _trials(sweep)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"], first.stdout + second.stdout
    states = {r["number"]: r["state"] for r in rows}
    assert states["0"] == "COMPLETE"
    # pruned from inside the training process after epoch 1 of 2, through the shared journal
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned and all(float(r["user_attrs_epochs"]) == 1 for r in pruned), second.stdout
    assert all(float(r["params_lr"]) < 1e-3 for r in pruned)
    # the invalid config failed with its error recorded, and the study went on
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert len(failed) == 1 and "batch_size" in failed[0]["user_attrs_error"], second.stdout
    assert states[str(int(failed[0]["number"]) + 1)] != "FAIL"  # the next trial ran normally
    # outputs
    for name in ("best_config.yaml", "trials.csv", "optimization_history.png"):
        assert (sweep / name).stat().st_size > 0, name
    assert "* = best" in second.stdout and "1 complete, 2 pruned, 1 fail" in second.stdout
    best = yaml.safe_load((sweep / "best_config.yaml").read_text())
    assert best["trial"] == 0 and best["params"]["lr"] == 0.05
    assert "trainer.optimizer.dense.lr=0.05" in best["overrides"]
    auc = best["objectives"]["eval/auc"]
    rerun = run_cli([*best["overrides"], "hydra.run.dir=rerun"], cwd=tmp_path)
    metrics = json.loads((tmp_path / "rerun" / "metrics.json").read_text())
    assert "pruned" not in metrics and abs(metrics["final"]["eval/auc"] - auc) < 1e-6, rerun.stdout


@pytest.mark.slow
def test_parallel_workers_share_one_storage_multi_objective(tmp_path, data_dir):
    space = """# @package _global_
defaults:
  - override /hydra/sweeper: lingjie_optuna
hydra:
  sweep: {dir: sweep}
  sweeper:
    optimize_metric: [eval/auc, parameters]
    direction: [maximize, minimize]
    sampler: nsga2
    n_jobs: 2
    n_trials: 2
    params:
      embedding_dim: {type: categorical, choices: [4, 8], paths: [features.user_id.embedding_dim,
        features.item_id.embedding_dim, features.gender.embedding_dim, features.age.embedding_dim,
        features.occupation.embedding_dim, features.zip_code.embedding_dim, features.genres.embedding_dim,
        features.release_year.embedding_dim]}
      model.hidden_units: [[32], [64, 32]]
"""
    out = run_cli(["-m", "+experiment=movielens_deepfm", "hparams_search=t", _search_path(tmp_path, space),
                   *SHRINK, "logger.tensorboard=false"], cwd=tmp_path)
    sweep = tmp_path / "sweep"
    study = optuna.load_study(study_name="movielens_deepfm", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep / "optuna_journal.log"))))
    trials = study.trials
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials), out.stdout
    # the two trial processes ran at the same time
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1)), spans
    assert all(t.values[1] > 1000 for t in trials)  # the parameter count is the second objective
    best = yaml.safe_load((sweep / "best_config.yaml").read_text())
    assert best["pareto_front"] and set(best["objectives"]) == {"eval/auc", "parameters"}
    assert (sweep / "pareto_front.png").exists() and "* = Pareto front" in out.stdout
    assert os.path.getsize(sweep / "trials.csv") > 0


def test_default_config_values_become_the_first_trial():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from automl.sweeper import Sweep, SweepSettings

    params = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
              "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
              "model.hidden_units": [[256, 128], [64]],
              "dim": {"choices": [8, 16], "paths": ["features.a.embedding_dim", "features.b.embedding_dim"]},
              "tied": {"choices": [8, 16], "paths": ["x.a", "x.b"]},
              "trainer.epochs": {"type": "int", "low": 2, "high": 8},
              "outside": {"type": "float", "low": 0.5, "high": 1.0}}
    values = {"lr": 0.01, "model.dropout": 0.2, "model.hidden_units": [64], "features.a.embedding_dim": 16,
              "features.b.embedding_dim": 16, "x.a": 8, "x.b": 16, "trainer.epochs": 5, "outside": 0.1}
    s = SweepSettings(sweep_dir=Path("/nonexistent"), study_name="s", optimize_metric=["eval/auc"],
                      direction=["maximize"], params=params, default_values=values)
    sweep = Sweep(s, ["+experiment=movielens_deepfm"], Path("."))
    # tied paths with different values ("tied") and values outside the space ("outside") are sampled
    assert sweep.default_params() == {"lr": 0.01, "model.dropout": 0.2, "model.hidden_units": "[64]", "dim": 16,
                                      "trainer.epochs": 5}
    assert s.max_epochs == 8  # a searched epoch count bounds hyperband's resource
    assert isinstance(sweep.space["trainer.epochs"], IntDistribution)
    assert isinstance(sweep.space["model.hidden_units"], CategoricalDistribution)
    assert isinstance(sweep.space["lr"], FloatDistribution)


@pytest.fixture(scope="module")
def seeded_tuned_sweep(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Any]:
    """One lr sweep shared by the two tests below (each reads its own knobs' effects): seeds [1, 2]
    averaged over each run's last 2 epochs, a report (and possible pruning) every 4 steps, tuned on
    the validation split. Returns (its directory, the sweep's CompletedProcess)."""
    tmp = tmp_path_factory.mktemp("lr_sweep")
    out = _lr_sweep(tmp, "seeds: [1, 2]\naverage_last_epochs: 2\nreport_every_n_steps: 4\n"
                         "tune_overrides: [data=movielens_100k_valid]")
    return tmp, out


@pytest.mark.slow
def test_default_first_tune_split_and_pruning_within_an_epoch(seeded_tuned_sweep):
    """Trial 0 is the config's own lr (0.05 here); trial 1 (lr 1e-9, RandomSampler seed 0) is pruned
    by a mid-epoch report on the validation split; best_config.yaml's final command drops the
    validation split and trains on train, scored on test."""
    tmp_path, out = seeded_tuned_sweep
    sweep = tmp_path / "sweep"
    rows = {r["number"]: r for r in _trials(sweep)}
    assert rows["0"]["user_attrs_source"] == "default config" and float(rows["0"]["params_lr"]) == 0.05
    # 2 epochs of 12 steps, once per seed
    assert rows["0"]["state"] == "COMPLETE" and int(rows["0"]["user_attrs_steps"]) == 2 * 24, out.stdout
    # 3000 rows / 256 = 12 steps per epoch, reports at steps 4 and 8: trial 1 stopped inside epoch 1
    assert float(rows["1"]["params_lr"]) < 1e-6 and rows["1"]["state"] == "PRUNED", out.stdout
    steps = int(rows["1"]["user_attrs_steps"])
    assert steps in (4, 8), out.stdout
    assert "trial 0 is the config's own values" in out.stdout and f"{2 * 24 + steps} trial steps" in out.stdout
    for run in (sweep / "0", sweep / "0" / "seed_2"):  # every seed's run tuned on the validation split
        tuned = yaml.safe_load((run / "config.yaml").read_text())["data"]
        assert tuned["dataset"] == "movielens-100k-valid" and tuned["eval_path"].endswith("valid.parquet")
    tuned = yaml.safe_load((sweep / "0" / "config.yaml").read_text())["data"]
    assert tuned["dataset"] == "movielens-100k-valid" and tuned["eval_path"].endswith("valid.parquet")
    best = yaml.safe_load((sweep / "best_config.yaml").read_text())
    assert "data=movielens_100k_valid" in best["overrides"]
    assert "data=movielens_100k_valid" not in best["final_overrides"] and "final_command" in best
    run_cli([*best["final_overrides"], "hydra.run.dir=final"], cwd=tmp_path)
    final = yaml.safe_load((tmp_path / "final" / "config.yaml").read_text())
    assert final["data"]["eval_path"].endswith("movielens-100k/test.parquet")
    assert final["trainer"]["optimizer"]["dense"]["lr"] == 0.05
    # the shrunk 2-epoch run at lr 0.05 reaches eval AUC 0.62; an untrained DeepFM scores ~0.54
    assert json.loads((tmp_path / "final" / "metrics.json").read_text())["final"]["eval/auc"] > 0.55


def test_a_wrong_sweeper_knob_is_one_clear_error(tmp_path):
    out = run_cli(["-m", "+experiment=movielens_deepfm", "hparams_search=movielens_deepfm", "hydra.sweep.dir=sweep",
                   "hydra.sweeper.report_every_n_steps=0"], cwd=tmp_path, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "hydra.sweeper.report_every_n_steps" in out.stderr and "null (report per epoch)" in out.stderr


def test_run_objective_and_seed_knobs_are_checked():
    from automl.sweeper import Sweep, SweepSettings, run_objective
    from lingjie.errors import ConfigError

    metrics = {"history": [{"eval/auc": 0.6}, {"eval/auc": 0.7}, {"eval/auc": 0.8}],
               "final": {"eval/auc": 0.8}, "parameters": 1234}
    assert run_objective(metrics, "eval/auc") == 0.8
    assert run_objective(metrics, "eval/auc", 2) == pytest.approx(0.75)
    assert run_objective(metrics, "eval/auc", 5) == pytest.approx(0.7)  # fewer epochs than K: all of them
    assert run_objective(metrics, "parameters", 2) == 1234.0  # no per-epoch values: the final/top-level one
    assert run_objective({"final": {"eval/auc": float("nan")}}, "eval/auc") is None
    params = {"lr": [0.1, 0.01]}

    def settings(**kw):
        return SweepSettings(sweep_dir=Path("/nonexistent"), study_name="s", optimize_metric=["eval/auc"],
                             direction=["maximize"], params=params, **kw)

    assert Sweep(settings(seeds=[3, 1]), [], Path(".")).s.seeds == [3, 1]
    for bad, knob in (({"seeds": []}, "seeds"), ({"seeds": [1, 1]}, "seeds"), ({"seeds": ["a"]}, "seeds"),
                      ({"average_last_epochs": 0}, "average_last_epochs")):
        with pytest.raises(ConfigError, match=f"hydra.sweeper.{knob}"):
            Sweep(settings(**bad), [], Path("."))


@pytest.mark.slow
def test_seeds_average_the_objective_and_a_pruned_trial_skips_its_other_seeds(seeded_tuned_sweep):
    """seeds: [1, 2] trains trial 0 twice (seed=1, seed=2) and scores the mean over seeds of each
    run's 2 epochs' mean; trial 1 (lr 1e-9, RandomSampler seed 0) is pruned inside epoch 1 of its
    seed-1 run and never starts seed 2."""
    tmp_path, out = seeded_tuned_sweep
    sweep = tmp_path / "sweep"
    runs = {seed: json.loads((sweep / "0" / sub / "metrics.json").read_text()) for seed, sub in ((1, "."), (2, "seed_2"))}
    for seed, m in runs.items():  # each run really trained with its seed
        assert yaml.safe_load((sweep / "0" / ("." if seed == 1 else "seed_2") / "config.yaml").read_text())["seed"] == seed
    per_seed = [sum(h["eval/auc"] for h in m["history"][-2:]) / 2 for m in runs.values()]
    assert per_seed[0] != per_seed[1]  # the seeds differ, so the mean is a real average
    rows = {r["number"]: r for r in _trials(sweep)}
    assert rows["0"]["state"] == "COMPLETE", out.stdout
    assert float(rows["0"]["value"]) == pytest.approx(sum(per_seed) / 2, abs=1e-9)
    assert int(rows["0"]["user_attrs_steps"]) == 2 * 24  # 2 epochs of 12 steps, twice
    assert rows["1"]["state"] == "PRUNED" and int(rows["1"]["user_attrs_epochs"]) == 1, out.stdout
    assert not (sweep / "1" / "seed_2").exists()
    best = yaml.safe_load((sweep / "best_config.yaml").read_text())
    assert best["seed_values"] == {"1": pytest.approx(per_seed[0]), "2": pytest.approx(per_seed[1])}
    assert best["overrides"][-1] == "seed=1"  # `command` re-runs the first seed's run as-is
    assert "(seeds 1, 2)" in out.stdout


def test_best_by_lower_bound_prefers_a_consistent_win_and_reports_the_gain_over_the_default():
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from automl.sweeper import Sweep, SweepSettings
    from automl.sweeper_outputs import _best_trials, seed_stats, vs_default
    from lingjie.errors import ConfigError

    study = optuna.create_study(direction="maximize")
    dist = {"lr": FloatDistribution(0.0, 1.0)}
    for lr, seeds, attrs in ((0.5, [0.70, 0.69, 0.71], {"source": "default config"}),
                             (0.1, [0.74, 0.68, 0.71], {}),        # the best mean, but a lucky seed
                             (0.2, [0.705, 0.697, 0.714], {})):   # a little lower mean, every seed ahead
        values = dict(zip(["1", "2", "3"], seeds))
        study.add_trial(create_trial(value=sum(seeds) / 3, params={"lr": lr}, distributions=dist,
                                     user_attrs={"seed_values": values, **attrs}))
    assert [t.number for t in _best_trials(study, False)] == [1]
    assert [t.number for t in _best_trials(study, False, "lower_bound")] == [2]
    mean, se, n = seed_stats(study.trials[1])
    assert n == 3 and mean == pytest.approx(0.71) and se == pytest.approx(0.03 / 3 ** 0.5)
    cmp = vs_default(study, study.trials[2])
    assert cmp["trial"] == 0 and cmp["gain"] == pytest.approx(0.016 / 3)
    assert cmp["gain_per_seed"] == {"1": pytest.approx(0.005), "2": pytest.approx(0.007), "3": pytest.approx(0.004)}
    assert vs_default(study, study.trials[0]) is None  # the default itself is best: nothing to compare
    with pytest.raises(ConfigError, match="hydra.sweeper.best_by"):  # lower_bound needs seeds to spread over
        Sweep(SweepSettings(sweep_dir=Path("/nonexistent"), study_name="s", optimize_metric=["eval/auc"],
                            direction=["maximize"], params={"lr": [0.1]}, best_by="lower_bound"), [], Path("."))


def test_sweeper_knobs_have_one_default() -> None:
    """The Hydra plugin's structured config (what `hydra.sweeper.*` shows and composes) and the
    sweep's own settings must agree on every default they share: a knob defaulted differently
    in two places fails here."""
    import dataclasses

    from automl.sweeper import SweepSettings
    from hydra_plugins.lingjie_optuna_sweeper.lingjie_optuna_sweeper import LingjieOptunaSweeperConf

    def defaults(cls: type) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    plugin, settings = defaults(LingjieOptunaSweeperConf), defaults(SweepSettings)
    shared = sorted(set(plugin) & set(settings))
    assert len(shared) >= 15, shared  # the check compares the real knobs, not an empty set
    assert {k: plugin[k] for k in shared} == {k: settings[k] for k in shared}
