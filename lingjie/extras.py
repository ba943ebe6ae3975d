"""Optional dependencies ("extras"): a missing one is one line that names the pip command.

Why: torch, tensorflow, optuna, pillow and tokenizers are extras of the ``lingjie`` package
(``setup.py`` ``extras_require``); a user who asked for ``trainer.backend=tf`` without
``lingjie[tf]`` should read what to install, not an ImportError traceback from deep inside
the model zoo. The check runs before the heavy import and imports nothing itself
(``importlib.util.find_spec`` only looks on the path).
"""
from __future__ import annotations

import importlib.util
import sys

from lingjie.errors import ConfigError


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level name, e.g. ``tensorflow``, ``PIL``) can be imported,
    without importing it. A ``None`` entry in ``sys.modules`` (an import blocked on purpose)
    counts as missing, as ``import`` itself would treat it."""
    top = module.split(".")[0]
    if top in sys.modules:
        return sys.modules[top] is not None
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # a broken parent package / a module without a spec
        return False


def missing_extra_message(module: str, extra: str, why: str) -> str:
    """The one line: what needs the extra, which module is missing, the pip command."""
    return f"{why} needs the '{extra}' extra ({module} is not installed): pip install 'lingjie[{extra}]'"


def require(module: str, extra: str, why: str, path: str = "") -> None:
    """Raise a :class:`ConfigError` at config path ``path`` when ``module`` is not installed.

    ``extra`` is the ``extras_require`` key that installs it; ``why`` names the setting that
    needs it (``trainer.backend=tf``), so the user sees which choice asked for the package."""
    if not installed(module):
        raise ConfigError(path, missing_extra_message(module, extra, why))
