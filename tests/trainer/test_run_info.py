"""run_info.json records how a run was made (trainer/run_info.py), and the log is <mode>.log.

Three real CLI runs (train with a literal secret, evaluate of it, a run failing on a missing
data file) and unit tests of the resume / worker / redaction rules."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.reliability.case import SMALL
from trainer import run_info
from trainer.process import hydra_log_name, remove_fresh_dir
from trainer.run_dir import RunDir

LITERAL = "hunter2-literal"


def _only_run(out: Path) -> Path:
    (run,) = [p for p in (out / "movielens_deepfm").iterdir() if p.is_dir()]
    return run


@pytest.mark.slow
def test_train_and_evaluate_runs_record_how_they_were_made(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    run_cli([*SMALL, f"paths.output_root={out}", f"+data.storage_options.password={LITERAL}"], cwd=tmp_path)
    run = _only_run(out)
    info = json.loads((run / "run_info.json").read_text())
    assert info["mode"] == "train" and info["status"] == "finished", info
    assert "error" not in info and "resumes" not in info
    assert info["command"][-1] == "+data.storage_options.password=***"
    assert info["overrides"][0] == "+experiment=movielens_deepfm" and f"paths.output_root={out}" in info["overrides"]
    assert info["lingjie"] == __import__("lingjie").__version__
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert {"torch", "numpy", "pyarrow", "hydra-core", "omegaconf"} <= set(info["packages"])
    assert isinstance(info["pid"], int) and info["host"] and info["started_at"] <= info["ended_at"]
    assert 0 < info["duration_s"] < 600
    if (Path(__file__).resolve().parents[2] / ".git").exists():  # run from a clone
        assert len(info["git_commit"]) == 40 and isinstance(info["git_dirty"], bool)
    leaked = [p for p in run.rglob("*") if p.is_file() and LITERAL.encode() in p.read_bytes()]
    assert not leaked, f"the secret is written in {leaked}"
    assert (run / "train.log").is_file() and not (run / "__main__.log").exists()
    assert "lingjie" in (run / "train.log").read_text()

    ev = tmp_path / "eval"
    run_cli([*SMALL, "trainer.mode=evaluate", f"trainer.evaluate.checkpoint={run}", f"hydra.run.dir={ev}"],
            cwd=tmp_path)
    assert (ev / "evaluate.log").is_file() and not (ev / "train.log").exists()
    info = json.loads((ev / "run_info.json").read_text())
    assert info["mode"] == "evaluate" and info["status"] == "finished", info


@pytest.mark.slow
def test_a_failed_run_records_the_error_line(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    missing = f"data.train_path={tmp_path}/nope.parquet"
    proc = run_cli([*SMALL, f"paths.output_root={out}", "data.dataset=null", missing], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    run = _only_run(out)
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "failed" and "nope.parquet: no such file" in info["error"], info
    assert info["error"] == (run / "FAILED").read_text().strip()
    assert "ended_at" in info and "duration_s" in info


@pytest.fixture
def owner(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test process owns its runs (not a launched worker, not a rank > 0)."""
    for name in ("LINGJIE_WORKER", "TF_CONFIG", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)


def test_a_resume_after_a_kill_appends_and_keeps_the_original(tmp_path: Path, owner: None) -> None:
    run = RunDir(tmp_path / "run")
    run_info.start(run, "train", argv=["trainer", "+experiment=x"], overrides=["+experiment=x"])
    # the process was killed: nothing ran finish; a new process resumes the run
    run_info.start(run, "train", argv=["trainer", "trainer.resume=true"], overrides=["trainer.resume=true"])
    run_info.finish(run, "failed", "boom\n")
    info = json.loads((run.root / "run_info.json").read_text())
    assert info["status"] == "running" and info["overrides"] == ["+experiment=x"]
    (again,) = info["resumes"]
    assert again["found"] == "running" and "killed" in again["note"]
    assert again["overrides"] == ["trainer.resume=true"] and again["status"] == "failed" and again["error"] == "boom"
    run_info.start(run, "train", argv=[], overrides=[])
    run_info.finish(run, "finished")
    info = json.loads((run.root / "run_info.json").read_text())
    assert [r["status"] for r in info["resumes"]] == ["failed", "finished"]
    assert info["resumes"][1]["found"] == "failed" and "note" not in info["resumes"][1]


def test_workers_do_not_write_it(tmp_path: Path, owner: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINGJIE_WORKER", "1")
    run = RunDir(tmp_path / "run")
    run_info.start(run, "train", argv=[], overrides=[])
    run_info.finish(run, "finished")
    assert not (run.root / "run_info.json").exists()


def test_secret_overrides_and_known_secrets_are_redacted() -> None:
    from dataio.credentials import remember_secret

    remember_secret("s3cr3t-remembered")
    got = run_info.redact_command(["+data.storage_options.secret=abc", "~hardware.env.API_KEY=xyz",
                                   "data.train_path=oss://id:pw@bucket/x", "note=s3cr3t-remembered",
                                   "--config-dir=/tmp/c", "trainer.epochs=2"])
    assert got == ["+data.storage_options.secret=***", "~hardware.env.API_KEY=***",
                   "data.train_path=oss://id:***@bucket/x", "note=***", "--config-dir=/tmp/c", "trainer.epochs=2"]


def test_no_git_state_outside_a_clone(tmp_path: Path) -> None:
    assert run_info.git_state(tmp_path) == {}


def test_a_fresh_dir_with_only_its_log_and_run_info_is_removed(tmp_path: Path) -> None:
    fresh, kept = tmp_path / "a" / "fresh", tmp_path / "b" / "kept"
    for d, names in ((fresh, [hydra_log_name(), "run_info.json"]), (kept, ["__main__.log", "trial.log"])):
        d.mkdir(parents=True)
        for name in names:
            (d / name).write_text("")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "__main__.log").write_text("")  # a run of Lingjie <= 0.1
    remove_fresh_dir(fresh)
    remove_fresh_dir(kept)
    remove_fresh_dir(tmp_path / "old")
    assert not fresh.exists() and kept.exists() and not (tmp_path / "old").exists()
