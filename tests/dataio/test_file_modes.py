"""Artifacts get the process umask's mode, not tempfile's private 0600/0700.

Why: a serving container or a teammate on a shared volume must be able to read checkpoints,
metrics and exports; ``mkstemp``/``mkdtemp`` ignore the umask, so every atomic write used to
publish a 0600 file.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dataio.atomic import (atomic_write_bytes, default_dir_mode, default_file_mode, process_umask,
                           publish_dir_mode)
from tests.conftest import run_cli
from tests.reliability.case import SMALL


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Set the umask for the block (children started inside inherit it), then restore it."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes_under(root: Path) -> dict[str, int]:
    """Relative path -> permission bits of every file and directory under ``root``."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_process_umask_follows_the_umask(mask: int) -> None:
    with umask(mask):
        assert process_umask() == mask
        assert default_file_mode() == 0o666 & ~mask
        assert default_dir_mode() == 0o777 & ~mask


@pytest.mark.parametrize("mask,want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_bytes_uses_the_umask(tmp_path: Path, mask: int, want: int) -> None:
    target = tmp_path / "sub" / "metrics.json"
    with umask(mask):
        atomic_write_bytes(target, b"{}\n")
        atomic_write_bytes(target, b'{"a": 1}\n')  # the rename over an existing file too
    assert target.read_bytes() == b'{"a": 1}\n'
    assert stat.S_IMODE(target.stat().st_mode) == want
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temp left


@pytest.mark.parametrize("mask,want", [(0o022, 0o755), (0o077, 0o700)])
def test_publish_dir_mode_opens_a_mkdtemp_dir(tmp_path: Path, mask: int, want: int) -> None:
    with umask(mask):
        tmp = Path(tempfile.mkdtemp(prefix=".ckpt.", dir=tmp_path))
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o700  # what mkdtemp does on its own
        publish_dir_mode(tmp)
    assert stat.S_IMODE(tmp.stat().st_mode) == want


@pytest.mark.parametrize("mask,file_mode,dir_mode,backend", [
    (0o022, 0o644, 0o755, "torch"), (0o077, 0o600, 0o700, "torch"),
    (0o022, 0o644, 0o755, "tf"),  # .tfckpt and saved_model/ are mkdtemp dirs renamed into place
], ids=["umask022", "umask077", "umask022-tf"])
def test_a_real_run_writes_everything_with_the_umask(tmp_path: Path, mask: int, file_mode: int,
                                                     dir_mode: int, backend: str) -> None:
    out = tmp_path / "out"
    with umask(mask):  # the subprocess inherits it
        proc = run_cli([*SMALL, f"trainer.backend={backend}", f"paths.output_root={out}"], cwd=tmp_path,
                       timeout=300)
    assert proc.returncode == 0
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    modes = modes_under(run)
    for rel in ("config.yaml", "metrics.json", "checkpoints/latest", "feature_state.json",
                "export/meta.json", "export/feature_state.json"):
        assert rel in modes, f"{rel} missing from the run dir: {sorted(modes)}"
    if backend == "tf":
        assert "checkpoints/epoch-0001.tfckpt" in modes and "export/saved_model" in modes, sorted(modes)
    else:
        assert any(rel.startswith("checkpoints/") and rel.endswith(".pt") for rel in modes)
        assert any(rel.startswith("export/model.") for rel in modes)
    wrong = {rel: oct(m) for rel, m in modes.items()
             if m != (dir_mode if (run / rel).is_dir() else file_mode)}
    assert not wrong, f"want files {oct(file_mode)}, dirs {oct(dir_mode)}; got {wrong}"


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)],
                         ids=["umask022", "umask077"])
def test_a_pulled_run_gets_the_umask(tmp_path: Path, mask: int, file_mode: int, dir_mode: int) -> None:
    """``trainer.remote_mirror.pull_run`` stages the copy in a mkdtemp dir renamed into place."""
    import fsspec

    from trainer.remote_mirror import pull_run
    from trainer.run_dir import RunDir

    fs = fsspec.filesystem("memory")
    base = f"/modes{tmp_path}/run-a"
    for rel, data in {"config.yaml": b"a: 1\n", "checkpoints/latest": b"epoch-0001.tfckpt\n",
                      "checkpoints/epoch-0001.tfckpt/meta.json": b"{}"}.items():
        fs.pipe_file(f"{base}/{rel}", data)
    local = RunDir(tmp_path / "out" / "run-a")
    try:
        with umask(mask):
            pull_run(f"memory://{base}", local)
    finally:
        fs.rm(f"/modes{tmp_path}", recursive=True)
    modes = modes_under(local.root)
    assert "checkpoints/epoch-0001.tfckpt/meta.json" in modes
    wrong = {rel: oct(m) for rel, m in modes.items()
             if m != (dir_mode if (local.root / rel).is_dir() else file_mode)}
    assert not wrong, f"want files {oct(file_mode)}, dirs {oct(dir_mode)}; got {wrong}"


def test_atomic_upload_to_a_local_path_gets_the_umask(tmp_path: Path) -> None:
    """Exports published with ``dataio.remote_atomic`` to a plain path go through mkstemp too."""
    from dataio.remote_atomic import atomic_upload, atomic_write_url

    src = tmp_path / "model.pt"
    src.write_bytes(b"weights")
    with umask(0o022):
        atomic_upload(src, tmp_path / "pub" / "model.pt")
        atomic_write_url(str(tmp_path / "pub" / "meta.json"), b"{}")
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (tmp_path / "pub").iterdir()} == {
        "model.pt": "0o644", "meta.json": "0o644"}
