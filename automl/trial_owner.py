"""Which process runs an Optuna trial, and whether it still does.

A sweep that resumes a study finds trials left RUNNING. Some were left by a sweep that died
(they must be recorded as failed, or they count against n_trials forever); others belong to a
sweep that is running right now on the same study (marking those failed makes the live sweep's
`tell` raise UpdateFinishedTrialError and loses its result). Each trial therefore records its
owner — host, pid and the pid's start time, so a recycled pid is not taken for the owner — and
only a trial whose owner is provably gone is failed. A trial owned by another host is left
alone: its process cannot be checked from here.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

OWNER_ATTR = "owner"
# a RUNNING trial without an owner record younger than this may be between `ask` and the owner
# record of a live sweep; older ones were left by a sweep from before owners were recorded
UNOWNED_GRACE_S = 300.0


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (Linux /proc), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    try:
        return int(fields[19])  # field 22 of stat; fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """The owner record of a trial this process runs."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": process_start(pid)}


def owner_alive(owner: Any) -> bool | None:
    """True when the owner process runs, False when it is gone, None when it cannot be told
    (another host, or a malformed record)."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    recorded, now = owner.get("start"), process_start(pid)
    if recorded is not None and now is not None and recorded != now:
        return False  # the pid was recycled: the owner is gone
    return True


def is_stale(trial: Any, now: dt.datetime | None = None) -> bool:
    """Whether a RUNNING ``trial`` (an optuna FrozenTrial) was left by a process that is gone."""
    owner = trial.user_attrs.get(OWNER_ATTR)
    if owner is not None:
        return owner_alive(owner) is False
    started = trial.datetime_start
    if started is None:
        return True
    now = now or dt.datetime.now(started.tzinfo)
    return (now - started).total_seconds() > UNOWNED_GRACE_S
