"""Remote resume does not trust the remote (issue 17): the ``checkpoints/latest`` pointer must
be a bare checkpoint file name, and a pull is staged beside the run and renamed into place,
so a killed pull never passes for a complete run. The remote is fsspec's in-memory file
system: the same calls pull_run makes against oss:// or hdfs://."""
from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from lingjie.errors import DataError
from trainer import remote_mirror
from trainer.remote_mirror import pull_run
from trainer.run_dir import RunDir, checkpoint_pointer_name, find_runs


@pytest.fixture()
def remote(tmp_path: Path):
    """A mirrored run in memory://, unique to this test (the memory file system is global)."""
    fs = fsspec.filesystem("memory")
    base = f"/runs{tmp_path}/run-a"
    files = {"config.yaml": b"a: 1\n", "metrics.json": b"{}", "feature_state.json": b"{}",
             "checkpoints/latest": b"epoch-0002.tfckpt\n", "checkpoints/epoch-0001.pt": b"old",
             "checkpoints/epoch-0002.tfckpt/vars.index": b"idx",
             "checkpoints/epoch-0002.tfckpt/vars.data-00000-of-00001": b"data",
             "checkpoints/epoch-0002.tfckpt/meta.json": b"{}"}
    for rel, data in files.items():
        fs.pipe_file(f"{base}/{rel}", data)
    yield fs, base
    fs.rm(f"/runs{tmp_path}", recursive=True)


@pytest.mark.parametrize("text,name", [
    ("epoch-0001.pt\n", "epoch-0001.pt"), ("step-00000020.tfckpt", "step-00000020.tfckpt"),
    ("../x.pt", None), ("/etc/x.pt", None), ("sub/x.pt", None), ("..\\x.pt", None), (".hidden.pt", None),
    ("x..pt", None), ("config.yaml", None), ("", None), ("a\0.pt", None)])
def test_checkpoint_pointer_name(text: str, name: str | None) -> None:
    assert checkpoint_pointer_name(text) == name


def test_local_pointer_out_of_the_run_is_ignored(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "exp" / "run")
    run.create()
    (tmp_path / "exp" / "evil.pt").write_bytes(b"x")
    (run.checkpoints / "latest").write_text("../../evil.pt")
    assert run.latest_checkpoint() is None
    (run.checkpoints / "epoch-0001.pt").write_bytes(b"x")
    assert run.latest_checkpoint() == run.checkpoints / "epoch-0001.pt"  # the newest real one


def test_pull_copies_the_latest_checkpoint_and_run_files(tmp_path: Path, remote) -> None:
    fs, base = remote
    local = RunDir(tmp_path / "out" / "exp" / "run-a")
    pull_run(f"memory://{base}", local)
    ckpt = local.checkpoints / "epoch-0002.tfckpt"
    assert local.latest_checkpoint() == ckpt
    assert (ckpt / "vars.data-00000-of-00001").read_bytes() == b"data" and (ckpt / "meta.json").exists()
    assert local.config.read_bytes() == b"a: 1\n" and local.feature_state.exists()
    assert not (local.checkpoints / "epoch-0001.pt").exists()  # only the latest travels
    assert [p.name for p in local.root.parent.iterdir()] == ["run-a"]  # no temp dir left


def test_pointer_out_of_the_run_is_refused_and_nothing_written(tmp_path: Path, remote) -> None:
    fs, base = remote
    fs.pipe_file(f"{base}/checkpoints/latest", b"../../../../escaped.pt")
    fs.pipe_file(f"{base}/escaped.pt", b"x")
    out = tmp_path / "out"
    local = RunDir(out / "exp" / "run-a")
    with pytest.raises(DataError) as err:
        pull_run(f"memory://{base}", local)
    text = str(err.value)
    assert "\n" not in text and "memory:" in text and f"{base}/checkpoints/latest" in text and "../../" in text
    assert not out.exists() and not list(tmp_path.rglob("escaped.pt"))


def test_killed_pull_leaves_no_run_and_the_next_pull_redoes_it(tmp_path: Path, remote,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fs, base = remote
    local = RunDir(tmp_path / "out" / "exp" / "run-a")
    real = type(fs).cat_file

    def dies_on_checkpoint(self, path, *args, **kwargs):  # noqa: ANN001, ANN202
        if "vars.index" in path:
            raise KeyboardInterrupt  # the process dies mid-pull, after the first checkpoint file
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(type(fs), "cat_file", dies_on_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        pull_run(f"memory://{base}", local)
    assert not local.root.exists() and not list(local.root.parent.iterdir())  # the temp dir is removed
    monkeypatch.setattr(remote_mirror.shutil, "rmtree", lambda *a, **k: None)  # SIGKILL: no clean-up runs
    with pytest.raises(KeyboardInterrupt):
        pull_run(f"memory://{base}", local)
    [leftover] = local.root.parent.iterdir()
    assert leftover.name.startswith(".run-a.pull-") and (leftover / "checkpoints").is_dir()
    assert not local.root.exists() and not find_runs(tmp_path / "out", "exp")  # never offered for resume
    monkeypatch.undo()
    pull_run(f"memory://{base}", local)
    assert local.latest_checkpoint() == local.checkpoints / "epoch-0002.tfckpt"
    assert sorted(p.name for p in local.root.parent.iterdir()) == ["run-a"]  # the leftover is gone


def test_pull_replaces_a_local_copy_without_checkpoint(tmp_path: Path, remote) -> None:
    """What an interrupted pull of an older Lingjie left (files, no checkpoint) is replaced."""
    fs, base = remote
    local = RunDir(tmp_path / "out" / "exp" / "run-a")
    local.create()
    local.config.write_text("stale: true\n")
    pull_run(f"memory://{base}", local)
    assert local.config.read_bytes() == b"a: 1\n" and local.latest_checkpoint() is not None
    assert sorted(p.name for p in local.root.parent.iterdir()) == ["run-a"]


@pytest.mark.parametrize("url", ["oss://bucket/runs/..", "oss://bucket/runs/../", "oss://bucket/runs/.run"])
def test_resume_url_must_end_in_a_run_name(tmp_path: Path, url: str) -> None:
    from types import SimpleNamespace

    from trainer.process import _pull_remote_run

    root = SimpleNamespace(paths=SimpleNamespace(output_root=str(tmp_path / "out")), experiment_name="exp",
                           data=SimpleNamespace(storage_options=None))
    with pytest.raises(DataError, match="run's directory name"):
        _pull_remote_run(SimpleNamespace(root=root), url)
    assert not (tmp_path / "out").exists()
