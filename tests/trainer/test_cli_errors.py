"""What the CLI prints for errors Hydra raises before `main` runs and for OS errors (issue 17):
one ``error:`` line, exit status 2; a bug keeps its traceback.

The explanations are tested in-process on the real exceptions Hydra raises when composing; a
few runs of the real CLI check the boundary (fail-fast, ~2 s each). A full disk is real where
the machine allows it: a 64 KiB tmpfs mounted in a user namespace (`unshare -rm`); and always a
file size limit (RLIMIT_FSIZE: the OS fails the write with EFBIG exactly as it fails a full
disk's with ENOSPC, without naming the file).
"""
from __future__ import annotations

import errno
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import compose, run_cli
from tests.reliability.case import SMALL
from trainer.compose import explain_compose_error, explain_os_error, user_paths


def _explained(overrides: list[str], config_dir: str | None = None) -> str:
    """The CLI's line for the exception that composing ``overrides`` raises."""
    with pytest.raises(Exception) as info:
        from trainer.compose import compose_config

        compose_config(["+experiment=movielens_deepfm", *overrides], config_dir)
    line = explain_compose_error(info.value, ["+experiment=movielens_deepfm", *overrides], config_dir)
    assert line is not None, repr(info.value)
    return line


def test_a_typo_without_plus_gets_the_schemas_did_you_mean() -> None:
    assert _explained(["trainer.epochz=3"]) == "trainer.epochz: unknown key; did you mean trainer.epochs?"
    assert _explained(["model.hiden_units=[8]"]) == "model.hiden_units: unknown key; did you mean model.hidden_units?"
    line = _explained(["features.user_id.embeding_dim=8"])
    assert line.startswith("features.user_id.embeding_dim: unknown key; did you mean features.user_id.embedding_dim")
    assert "+" not in line  # never advise appending the typo
    assert _explained(["trainer.qqqzzz=1"]) == "trainer.qqqzzz: unknown key"


def test_only_a_key_the_schema_accepts_is_told_to_use_plus() -> None:
    line = _explained(["data.storage_options.anon=true"])  # a free-form mapping: a new key is fine
    assert line == ("data.storage_options.anon: not in the config; to add it, write +data.storage_options.anon=true "
                    "(or ++data.storage_options.anon=true to add or override)")


def test_bad_syntax_and_missing_group_options() -> None:
    line = _explained(["trainer.epochs=[1,"])
    assert line.startswith("bad override 'trainer.epochs=[1,': no viable alternative at input '[1,'")
    line = _explained(["model=deepfn"])
    assert line.startswith("model=deepfn: no such model config; did you mean model=deepfm? (available: ")
    with pytest.raises(Exception) as info:
        compose(["+experiment=movielens_deepfn"])
    line = explain_compose_error(info.value, ["+experiment=movielens_deepfn"])
    assert line is not None and "did you mean experiment=movielens_deepfm" in line


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "experiment").mkdir()
    bad = tmp_path / "experiment" / "mine.yaml"
    bad.write_text("# @package _global_\ntrainer:\n  epochs: 2\n\tlr: 1\n")
    with pytest.raises(Exception) as info:
        compose(["+experiment=mine", f"hydra.searchpath=[file://{tmp_path}]"])
    line = explain_compose_error(info.value, [])
    assert line == f"{bad}:4:1: found character '\\t' that cannot start any token (while scanning for the next token)"


def test_os_errors_the_user_fixes_and_the_bugs_that_keep_their_traceback(tmp_path: Path) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out/run/config.yaml")
    assert explain_os_error(full, []) == ("cannot write /data/out/run/config.yaml: No space left on device "
                                          "(free space or set paths.output_root)")
    nameless = OSError(errno.ENOSPC, "No space left on device")  # what a failing write() raises
    assert explain_os_error(nameless, [], where="/data/out/run") == (
        "cannot write under /data/out/run: No space left on device (free space or set paths.output_root)")
    assert explain_os_error(nameless, []) is None
    denied = PermissionError(errno.EACCES, "Permission denied", "/ro/out")
    assert explain_os_error(denied, []) == "cannot write /ro/out: Permission denied (set paths.output_root " \
                                           "to a writable directory)"
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/x")
    assert explain_os_error(missing, user_paths(["paths.output_root=/proc/x"], {})) is not None
    assert explain_os_error(missing, user_paths(["trainer.epochs=3"], {})) is None  # a path the code chose: a bug
    assert explain_os_error(OSError("no errno"), ["/"]) is None
    assert explain_os_error(ValueError("x"), ["/"]) is None


def _errors(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def test_cli_typo_without_plus_is_one_line_even_with_hydra_full_error(tmp_path: Path) -> None:
    for full_error in ("0", "1"):
        proc = run_cli(["+experiment=movielens_deepfm", "trainer.epochz=3", f"paths.output_root={tmp_path / 'out'}"],
                       cwd=tmp_path, env={"HYDRA_FULL_ERROR": full_error}, check=False)
        assert proc.returncode == 2
        assert _errors(proc) == ["error: trainer.epochz: unknown key; did you mean trainer.epochs?"]
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_unwritable_output_root_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    proc = run_cli(["+experiment=movielens_deepfm", f"paths.output_root={tmp_path / 'afile' / 'out'}"],
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2
    (line,) = _errors(proc)
    assert line.startswith(f"error: cannot write {tmp_path / 'afile' / 'out'}") and "Not a directory" in line


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))


@pytest.mark.slow
def test_cli_a_write_the_os_refuses_midway_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    import os
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([sys.executable, "-m", "trainer", *SMALL,
                           f"paths.output_root={tmp_path / 'out'}"], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=300, preexec_fn=_limit_file_size)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = _errors(proc)
    assert line.startswith(f"error: cannot write under {tmp_path / 'out' / 'movielens_deepfm'}/")
    assert line.endswith("File too large (the file size limit (ulimit -f) is too small)")


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
def test_cli_a_full_disk_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    """A real ENOSPC: the output root is a 64 KiB tmpfs (in a private mount namespace)."""
    import os
    import sys

    from tests.conftest import ROOT

    disk = tmp_path / "disk"
    disk.mkdir()
    if not _can_mount_tmpfs(disk):
        pytest.skip("no user namespaces here (unshare -rm): the RLIMIT_FSIZE test covers a refused write")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    script = 'mount -t tmpfs -o size=64k tmpfs "$1" && shift && exec "$@"'
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(disk), sys.executable, "-m", "trainer",
                           *SMALL, f"paths.output_root={disk}"], cwd=tmp_path,
                          env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = _errors(proc)
    assert line.startswith(f"error: cannot write under {disk / 'movielens_deepfm'}/")
    assert line.endswith("No space left on device (free space or set paths.output_root)")


def test_the_cli_boundary_keeps_bugs() -> None:
    """Not every exception is the user's: the boundary explains only what it recognises."""
    import trainer.__main__ as cli

    assert cli.explain_error(RuntimeError("a bug"), ["+experiment=movielens_deepfm"]) is None
    assert cli.explain_error(KeyError("x"), []) is None
    assert cli.explain_error(OSError(errno.ENOENT, "No such file or directory", "/opt/lingjie/x"), []) is None
