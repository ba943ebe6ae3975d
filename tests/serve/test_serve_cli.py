"""``lingjie serve`` without a model behind it: PATH resolution (export dir, run dir, model
repository of versions), the model name, the missing-extra line, the CLI dispatch and help."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lingjie.errors import ConfigError
from tests.conftest import ROOT
from trainer.serve.repository import model_name, resolve


def _export(d: Path, program: bool = True, **meta: object) -> Path:
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"format": "torch_export", "domain": "rec", "program": "model.pt2",
                                             **meta}))
    if program:
        (d / "model.pt2").write_bytes(b"x")
    return d


def test_export_dir_and_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "run"
    export = _export(run / "export")
    (run / "config.yaml").write_text("trainer:\n  experiment_name: null\nexperiment_name: my_exp\n")
    for path in (export, run):
        got = resolve(path)
        assert (got.export_dir, got.run_dir, got.version) == (export, run, "1")
        assert model_name(got, "") == "my_exp"  # from the run's config.yaml
    assert model_name(resolve(run), "hinted") == "hinted"


def test_model_repository_serves_the_highest_complete_version(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _export(repo / "2", experiment="movielens")
    _export(repo / "10" / "export", experiment="movielens")  # a run dir as a version
    _export(repo / "11", program=False)  # still being copied: skipped
    (repo / "12").mkdir()  # empty: skipped
    got = resolve(repo)
    assert (got.version, got.export_dir) == ("10", repo / "10" / "export")
    assert model_name(got, "") == "movielens"


def test_nothing_to_serve_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no complete export"):
        resolve(tmp_path)
    with pytest.raises(ConfigError, match="is not a directory"):
        resolve(tmp_path / "absent")


def test_missing_serve_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    from trainer.serve.__main__ import main

    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lingjie serve needs the 'serve' extra" in err
    assert "pip install 'lingjie[serve]'" in err


def test_lingjie_serve_dispatch_and_help(tmp_path: Path) -> None:
    """`python -m trainer serve` reaches the server CLI (no Hydra): a bad PATH is one error line."""
    proc = subprocess.run([sys.executable, "-m", "trainer", "serve", str(tmp_path / "absent")], cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, text=True, capture_output=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    from trainer.explain import help_text

    assert "lingjie serve PATH" in help_text()
