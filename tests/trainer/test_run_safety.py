"""Run directories are unique, locked while live, marked FAILED on errors, and resume only
what fits (issue 17). In-process and cheap: fake runs (a config.yaml and an empty checkpoint
file) stand in for trained ones; the lock holder is a real second process."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lingjie.errors import ConfigError, DataError
from tests.conftest import ROOT
from trainer.config_diff import config_differences, describe_differences, merge_sections
from trainer.job import run_marking_failure
from trainer.process import hydra_log_name, remove_fresh_dir
from trainer.run_dir import RunDir, find_runs, resolve_resume_dir
from trainer.run_id import run_id
from trainer.run_lock import held_by_other, lock_holder, release_run_lock, remove_stale_temp, try_lock_run

RUN_ID = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}-[0-9a-f]{4}$")


def _fake_run(base: Path, name: str, done: bool = False, failed: bool = False) -> Path:
    run = base / "exp" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("a: 1\n")
    (run / "checkpoints" / "epoch-0001.pt").write_bytes(b"")
    if done:
        (run / "DONE").write_text("")
    if failed:
        (run / "FAILED").write_text("data error: boom\n")
    return run


@pytest.fixture
def holder(tmp_path: Path):
    """Start a second process that locks a run dir and sleeps; yields (start, process)."""
    procs: list[subprocess.Popen] = []

    def start(run: Path) -> subprocess.Popen:
        code = ("import sys, time\nfrom trainer.run_lock import try_lock_run\n"
                "assert try_lock_run(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(60)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_run_ids_are_unique_per_process_and_sort_by_start_time() -> None:
    code = "from trainer.run_id import run_id; print(run_id())"
    ids = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, text=True,
                          capture_output=True, check=True).stdout.strip() for _ in range(2)]
    assert all(RUN_ID.match(i) for i in ids) and ids[0] < ids[1]
    assert run_id() == run_id() and RUN_ID.match(run_id())


def test_hydra_run_and_sweep_dirs_use_the_run_id() -> None:
    text = (ROOT / "configs" / "hydra" / "default.yaml").read_text()
    assert "${lingjie.run_id:}" in text.split("sweep:")[0] and "${lingjie.run_id:}" in text.split("sweep:")[1]
    assert "%H-%M-%S}" not in text
    from omegaconf import OmegaConf

    import trainer  # noqa: F401  (registers the resolver)

    assert OmegaConf.create({"d": "x/${lingjie.run_id:}"}).d == f"x/{run_id()}"


def test_a_run_locked_by_a_live_process_is_refused_or_skipped(tmp_path: Path, holder) -> None:
    older = _fake_run(tmp_path, "2026-01-01_00-00-00_000000-aaaa")
    newer = _fake_run(tmp_path, "2026-01-01_00-00-00_000001-bbbb")
    proc = holder(newer)
    assert lock_holder(newer) == proc.pid and held_by_other(newer) == proc.pid
    with pytest.raises(ConfigError, match=rf"run {re.escape(str(newer))} is in use by a live process "
                                          rf"\(pid {proc.pid}\); wait for it or pick another run"):
        resolve_resume_dir(str(newer), str(tmp_path), "exp", tmp_path / "exp" / "fresh")
    assert resolve_resume_dir(True, str(tmp_path), "exp", tmp_path / "exp" / "fresh") == older
    proc.send_signal(signal.SIGKILL)  # the kernel releases the lock of a killed process
    proc.wait()
    assert lock_holder(newer) is None
    assert resolve_resume_dir(True, str(tmp_path), "exp", tmp_path / "exp" / "fresh") == newer


def test_own_lock_is_not_in_use(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r")
    assert try_lock_run(run) and try_lock_run(run)
    assert lock_holder(run) is None and (run / "LOCK").read_text().strip().isdigit()
    release_run_lock(run)


def test_resume_true_skips_failed_and_done_runs_explicit_resume_takes_failed(tmp_path: Path) -> None:
    ok = _fake_run(tmp_path, "2026-01-01_00-00-00_000000-aaaa")
    _fake_run(tmp_path, "2026-01-01_00-00-01_000000-aaaa", failed=True)
    _fake_run(tmp_path, "2026-01-01_00-00-02_000000-aaaa", done=True)
    assert resolve_resume_dir("true", str(tmp_path), "exp", tmp_path / "exp" / "fresh") == ok
    failed = tmp_path / "exp" / "2026-01-01_00-00-01_000000-aaaa"
    assert resolve_resume_dir(str(failed), str(tmp_path), "exp", tmp_path / "exp" / "fresh") == failed


def test_find_runs_sorts_old_and_new_names_by_start_time(tmp_path: Path) -> None:
    names = ["2026-01-01_00-00-00", "2026-01-01_00-00-00_000001-ffff", "2026-01-01_00-00-00_000002-0000",
             "2026-01-01_00-00-01_000000-aaaa"]
    for n in reversed(names):
        _fake_run(tmp_path, n)
    assert [r.root.name for r in find_runs(tmp_path, "exp")] == names


def test_a_failing_run_writes_failed_and_a_fresh_one_leaves_nothing(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r")
    fresh = tmp_path / "exp" / "fresh"
    fresh.mkdir()
    (fresh / hydra_log_name()).write_text("")
    assert try_lock_run(run) and try_lock_run(fresh)

    def work() -> Path:
        raise DataError("no such file", file="x.parquet")

    with pytest.raises(DataError):
        run_marking_failure(work)
    assert (run / "FAILED").read_text().strip() == "data error in x.parquet: no such file"
    assert not fresh.exists()
    release_run_lock(run)

    def crash() -> Path:
        raise OSError(28, "No space left on device")

    assert try_lock_run(run)
    with pytest.raises(OSError):
        run_marking_failure(crash)
    assert "No space left on device" in (run / "FAILED").read_text()
    release_run_lock(run)


def test_remove_fresh_dir_keeps_a_dir_with_content(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r")
    remove_fresh_dir(run)
    assert run.exists()


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r")
    stale = [run / ".metrics.json.abc123.tmp", run / "checkpoints" / ".step-00000020.pt.x1.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    tf_tmp = run / "checkpoints" / ".step-00000020.tfckpt.q9"
    tf_tmp.mkdir()
    keep = [run / "config.yaml", run / "checkpoints" / "epoch-0001.pt"]
    assert sorted(remove_stale_temp(run)) == sorted([*stale, tf_tmp])
    assert all(p.exists() for p in keep) and not any(p.exists() for p in [*stale, tf_tmp])


def test_config_differences_name_keys_with_both_values() -> None:
    saved = {"model": {"name": "deepfm", "hidden_units": [256, 128], "dropout": 0.0},
             "features": {"user_id": {"embedding_dim": 16}}, "data": {"labels": {"like": {"threshold": 4.0}}},
             "trainer": {"epochs": 1}}
    now = {"model": {"name": "deepfm", "hidden_units": (64,), "dropout": 0.0},
           "features": {"user_id": {"embedding_dim": 32}}, "data": {"labels": {"like": {"threshold": 4.0}}},
           "trainer": {"epochs": 5}}
    keys = config_differences(now, saved, ["model", "features", "data.labels"])
    assert keys == ["model.hidden_units", "features.user_id.embedding_dim"]  # trainer.* may change
    assert describe_differences(now, saved, keys) == (
        "model.hidden_units=[256,128], features.user_id.embedding_dim=16", "[64], 32")
    assert config_differences(saved, saved, ["model", "features"]) == []
    other = {**now, "model": {"name": "dcnv2", "cross_layers": 3}}
    keys = config_differences(other, saved, ["model", "features"])
    assert keys[0] == "model.name"
    was, says = describe_differences(other, saved, keys)
    assert was.startswith("model.name=deepfm, features.user_id.embedding_dim=16") and says == "dcnv2, 32"
    merged = merge_sections({"model": {"name": "dcnv2"}, "trainer": {"epochs": 5}}, saved, ["model"])
    assert merged == {"model": saved["model"], "trainer": {"epochs": 5}}


def test_recipes_name_their_model_shaping_keys() -> None:
    from easycv.recipe import CVRecipe
    from easynlp.recipe import NLPRecipe
    from easyrec.recipe import RecRecipe

    assert RecRecipe.model_config_keys(None) == ["model", "features", "data.labels"]  # type: ignore[arg-type]
    assert "data.image_size" in CVRecipe.model_config_keys(None)  # type: ignore[arg-type]
    assert "data.tokenizer" in NLPRecipe.model_config_keys(None)  # type: ignore[arg-type]
    assert RunDir("x").failed_marker.name == "FAILED"
