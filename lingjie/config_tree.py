"""Where the shipped config tree is: ``configs/`` beside the packages in a clone (or an editable
install), ``lingjie/configs`` inside an installed wheel (setup.py maps it there).

Everything that composes or lists configs (the CLI's Hydra entry point, the compose API, the
help pages, the defaults checker) asks here, so an installed package works from any directory.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The directory holding ``config.yaml`` and the config groups."""
    shipped = _PACKAGE / "configs"
    if (shipped / "config.yaml").is_file():
        return shipped
    return _PACKAGE.parent / "configs"


CONFIG_DIR = config_dir()
