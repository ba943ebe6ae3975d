"""Delta exports while serving: patch the served model in place, one reference swap per delta.

A domain adapter that takes deltas (the rec one: ``easyrec.delta_apply``) has, besides the
interface in :mod:`trainer.serve`::

    delta_step: int | None                 # the step of the last delta applied (None: none)
    pending_deltas() -> list[Path]         # the delta dirs of its export's base after delta_step, in order
    with_delta(path) -> adapter            # a new adapter with the delta applied (this one untouched);
                                           # raises when the delta is broken or out of chain

The manager's watcher calls :func:`follow_deltas` after each listing: every pending delta is
applied to a copy of the served program, warmed up, and swapped in with one reference swap, so
a request is scored on the old weights or the new ones, never on half of a delta. A delta that
fails (corrupt, sha256 mismatch, out of chain) is logged, counted
(``lingjie_serve_delta_failures_total``), shown in the model metadata, not tried again until its
manifest changes or the chain moves on (a delta that arrived before its predecessor is tried again
once that one is applied), and the model keeps serving what it has.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("lingjie.serve")


def _stamp(path: Path) -> str:
    try:
        st = (path / "manifest.json").stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


class DeltaFollower:
    """What the manager remembers about deltas: the ones that failed (path -> stamp, reason)."""

    def __init__(self) -> None:
        self.failed: dict[str, tuple[str, str]] = {}

    def failures(self) -> list[dict[str, str]]:
        return [{"delta": Path(p).name, "reason": r} for p, (_, r) in self.failed.items()]

    def follow(self, manager: Any) -> None:
        """Apply the served model's pending deltas in order, each by one reference swap."""
        self.failed = {p: v for p, v in self.failed.items() if Path(p).exists()}  # removed: forget
        current = manager.current_or_none()
        while current is not None and hasattr(current.adapter, "pending_deltas"):
            # a failure is remembered with the chain it failed on: a delta that arrived before its
            # predecessor is tried again once the predecessor is applied
            where = f"{current.version}|{current.delta_step}|"
            pending = [p for p in current.adapter.pending_deltas()
                       if self.failed.get(str(p), ("", ""))[0] != where + _stamp(p)]
            if not pending:
                return
            path = pending[0]
            try:
                adapter = current.adapter.with_delta(path)
                adapter.predict(adapter.example_instances())  # warm-up: a delta that breaks the forward pass fails here
            except Exception as exc:  # noqa: BLE001 - a bad delta is reported, never fatal
                reason = f"{type(exc).__name__}: {exc}"[:500]
                self.failed[str(path)] = (where + _stamp(path), reason)
                log.error("delta %s of version %s refused; still serving delta %s: %s", path.name,
                          current.version, current.delta_step, reason)
                manager.count_delta_failure()
                return
            model = dataclasses.replace(current, adapter=adapter, delta_step=adapter.delta_step)
            if not manager.replace_current(current, model):
                return  # a full reload won the race: its own deltas come next poll
            self.failed.pop(str(path), None)
            log.info("serving version %s + delta %s", model.version, model.delta_step)
            current = model
