"""Progress bars (tqdm) for every long wait, switched by one flag: ``trainer.progress_bar``.

Why here: dataset preparation (``dataio.datasets``), feature fitting (``easyrec``), the training
loop (``trainer``) and AutoML feature generation / selection (``automl``) all show bars, and
``dataio`` is the lowest layer all of them may import (``lingjie`` itself stays standard-library
only). Callers pass the flag explicitly (``enabled=root.trainer.progress_bar``), so a run with
``trainer.progress_bar=false`` is quiet from the dataset fetch to the last evaluation.

Bars go to stderr and are removed when done (``leave=False``). When stderr is not a terminal
(CI logs, ``nohup``) a bar still shows but redraws at most every ``LOG_INTERVAL_S`` seconds, so
a long job's log gets a handful of carriage-return updates, not thousands.
"""
from __future__ import annotations

import sys
from typing import Iterable

from tqdm import tqdm

TTY_INTERVAL_S = 0.5  # redraw interval on a terminal
LOG_INTERVAL_S = 30.0  # redraw interval when stderr is a file or a pipe


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def progress(items: Iterable | None, desc: str, total: int | float | None = None, initial: int = 0,
             enabled: bool = True, unit: str = "batch") -> "tqdm":
    """A tqdm bar over ``items`` (None: a bar driven by ``update(n)``). A disabled bar prints
    nothing but still supports iteration, ``update``, ``set_postfix`` and ``close``, so callers
    need no branches."""
    interval = TTY_INTERVAL_S if _stderr_is_tty() else LOG_INTERVAL_S
    return tqdm(items, desc=desc, total=total, initial=initial, disable=not enabled, dynamic_ncols=True,
                leave=False, file=sys.stderr, mininterval=interval, unit=unit)
