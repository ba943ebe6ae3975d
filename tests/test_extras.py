"""A missing optional dependency is one ``error:`` line naming the pip extra, exit status 2.

The CLI runs block a module the way an installation without it behaves: ``sys.modules[name] =
None`` makes both ``importlib.util.find_spec`` and ``import`` see no module (``import`` raises
ModuleNotFoundError), so without the check the run would end in an ImportError traceback.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lingjie.errors import ConfigError
from lingjie.extras import installed, require
from tests.conftest import ROOT
from tests.reliability.case import SMALL
from trainer.domains import require_frameworks


def run_without(modules: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m trainer ARGS`` in a process where ``modules`` cannot be imported."""
    code = ("import runpy, sys\n"
            f"for name in {modules!r}: sys.modules[name] = None\n"
            f"sys.argv = ['trainer', *{args!r}]\n"
            "runpy.run_module('trainer', run_name='__main__', alter_sys=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=300)


def test_installed_sees_what_import_would() -> None:
    assert installed("json")
    assert installed("json.decoder")  # a dotted name: its top-level package decides
    assert not installed("lingjie_no_such_module_xyz")


def test_a_blocked_module_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lingjie_blocked_xyz", None)
    assert not installed("lingjie_blocked_xyz")


def test_require_names_the_extra_and_the_pip_command() -> None:
    require("json", "nothing", "anything", "x")  # installed: no error
    with pytest.raises(ConfigError) as info:
        require("lingjie_no_such_module_xyz", "tf", "trainer.backend=tf", "trainer.backend")
    assert info.value.path == "trainer.backend"
    assert str(info.value) == ("config error at 'trainer.backend': trainer.backend=tf needs the 'tf' extra "
                               "(lingjie_no_such_module_xyz is not installed): pip install 'lingjie[tf]'")


@pytest.mark.parametrize("domain,backend,blocked,extra", [
    ("rec", "tf", "tensorflow", "tf"),
    ("rec", "torch", "torch", "torch"),
    ("cv", "torch", "torch", "cv"),  # cv's extra brings torch: name it, not 'torch'
    ("cv", "torch", "PIL", "cv"),
    ("nlp", "torch", "tokenizers", "nlp"),
])
def test_require_frameworks_maps_domain_and_backend_to_extras(monkeypatch: pytest.MonkeyPatch, domain: str,
                                                              backend: str, blocked: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ConfigError, match=rf"needs the '{extra}' extra \({blocked} is not installed\): "
                                          rf"pip install 'lingjie\[{extra}\]'"):
        require_frameworks(domain, backend)


def test_a_tf_run_without_tensorflow_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_without(["tensorflow"], [*SMALL, "trainer.backend=tf", f"paths.output_root={out}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: config error at 'trainer.backend': trainer.backend=tf needs the 'tf' extra "
        "(tensorflow is not installed): pip install 'lingjie[tf]'")
    assert not list(out.glob("*/*/config.yaml"))  # refused before a run directory was written


def test_a_sweep_without_optuna_is_one_line(tmp_path: Path) -> None:
    args = ["-m", "+experiment=movielens_deepfm", "hparams_search=movielens_deepfm",
            f"paths.output_root={tmp_path / 'out'}"]
    proc = run_without(["optuna"], args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: config error at 'hparams_search': hparams_search (the Optuna sweeper) needs the 'automl' "
        "extra (optuna is not installed): pip install 'lingjie[automl]'")
