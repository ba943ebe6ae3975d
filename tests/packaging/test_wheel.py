"""The user's path: build the wheel, install it into a fresh venv with the lock, and run
`lingjie` from a directory outside the clone (rec, cv and nlp experiments shrunk to seconds).

Nothing of the clone is on that venv's path: the configs, the Hydra plugin and the console
scripts must all come from the wheel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements-lock.txt"
SOURCE = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "configs", "lingjie", "trainer", "easyrec", "easycv",
          "easynlp", "automl", "dataio", "hydra_plugins"]
QUIET = ["trainer.progress_bar=false", "hardware.threads=1"]
REC = ["+experiment=movielens_deepfm", "data.limit_train_rows=3000", "data.limit_eval_rows=2000", "data.batch_size=256",
       "trainer.epochs=1"]
CV = ["+experiment=digits_resnet", "model.stem_channels=8", "model.widths=[8,16]", "model.depths=[1,1]",
      "data.limit_train_rows=128", "data.limit_eval_rows=64", "data.batch_size=32", "trainer.epochs=1"]
NLP = ["+experiment=chnsenti_textcnn", "data.limit_train_rows=200", "data.limit_eval_rows=100",
       "trainer.epochs=1", "model.num_filters=8", "data.max_len=32"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel built from this checkout, [torch,cv,nlp] at the locked versions."""
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # built from a copy: setuptools' build/ dir in the clone would keep deleted modules in the wheel
    source = base / "source"
    source.mkdir()
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    # --no-build-isolation: the build backend (setuptools) is the one the lock put in this venv
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"),
          str(source)], cwd=base, env=env)
    wheel = next((base / "dist").glob("lingjie-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base, env=env)
    # --no-compile: byte-compiling torch's thousands of modules costs more than the few imports need
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
          "-c", str(LOCK),
          f"{wheel}[torch,cv,nlp]"], cwd=base, env=env)
    return venv


@pytest.fixture()
def outside(tmp_path: Path, data_dir: Path) -> tuple[Path, dict[str, str]]:
    """A working directory outside the clone, and an environment without the clone on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["LINGJIE_DATA_DIR"] = str(data_dir)
    return tmp_path, env


def _metrics(stdout: str) -> dict:
    run = Path(stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    assert run.is_dir(), stdout[-2000:]
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_wheel_holds_configs_and_scripts(installed: Path, outside: tuple[Path, dict[str, str]]) -> None:
    cwd, env = outside
    bin_dir = installed / "bin"
    shown = _run([str(bin_dir / "lingjie"), "--help"], cwd, env).stdout
    assert "movielens_deepfm" in shown and "Config groups" in shown, shown
    groups = shown.split("Config groups", 1)[1]
    assert "base" not in groups and "cv_base" not in groups, "internal base files are not options"
    _run([str(bin_dir / "lingjie-datasets"), "list"], cwd, env)
    code = "import trainer, lingjie.config_tree as t; print(trainer.__file__); print(t.CONFIG_DIR)"
    where = _run([str(bin_dir / "python"), "-c", code], cwd, env).stdout.split()
    assert all(str(installed) in line for line in where), f"not the installed copy: {where}"
    assert not any(str(ROOT) in line for line in where)
    mine = cwd / "conf" / "experiment"  # the user's own experiment, in the user's repository
    mine.mkdir(parents=True)
    (mine / "my_ctr.yaml").write_text("# @package _global_\ndefaults:\n  - override /model: dcnv2\n"
                                      "experiment_name: my_ctr\n")
    job = _run([str(bin_dir / "lingjie"), "--config-dir", "conf", "+experiment=my_ctr", "--cfg", "job"], cwd, env)
    assert "experiment_name: my_ctr" in job.stdout and "name: dcnv2" in job.stdout, job.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [REC, CV, NLP], ids=["rec", "cv", "nlp"])
def test_wheel_runs_experiments(installed: Path, outside: tuple[Path, dict[str, str]], overrides: list[str],
                                request: pytest.FixtureRequest) -> None:
    cwd, env = outside
    if "chnsenti" in overrides[0] or "digits" in overrides[0]:
        from dataio.datasets import ensure_dataset

        ensure_dataset("chnsenti" if "chnsenti" in overrides[0] else "digits", env["LINGJIE_DATA_DIR"])
    proc = _run([str(installed / "bin" / "lingjie"), *overrides, *QUIET], cwd, env)
    metrics = _metrics(proc.stdout)
    assert metrics["finished"], metrics
    assert (cwd / "outputs").is_dir(), "runs go under the user's working directory"
    shutil.rmtree(cwd / "outputs")
