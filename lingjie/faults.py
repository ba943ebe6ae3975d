"""Named fault points: where a test may SIGKILL the process to prove nothing is lost.

``LINGJIE_FAULT=PATTERN[@N]`` kills this process (SIGKILL: no cleanup, no ``finally``) the
N-th time (default 1st) a fault point whose name matches the shell pattern is reached.
Unset (every user run) a fault point costs one dict lookup. The names in use:

  feature_fit           inside the feature pipeline's fit, after its first batch
  train_step            after a train step (and its checkpoint, if one was due)
  eval_step             after an evaluation batch
  write <file name>     an atomic write: the temp file is complete, the rename not yet done
  export                the export is written, the DONE marker not yet
"""
from __future__ import annotations

import fnmatch
import os
import signal

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """SIGKILL this process here when ``LINGJIE_FAULT`` names this point (tests only)."""
    spec = os.environ.get("LINGJIE_FAULT")
    if not spec:
        return
    pattern, _, nth = spec.partition("@")
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _hits[pattern] = _hits.get(pattern, 0) + 1
    if _hits[pattern] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
