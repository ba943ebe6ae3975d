"""TensorBoard scalars without importing a training framework (same files for torch and TF)."""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

# TensorBoard's writer imports TensorFlow when it is installed (2 s, and its log noise) unless
# the module "tensorboard.compat.notf" exists; a torch run needs only the stub file I/O.
if "tensorflow" not in sys.modules:
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

from tensorboard.compat.proto.event_pb2 import Event  # noqa: E402
from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402


class EventWriter:
    """Writes ``events.out.tfevents.*`` into ``logdir`` (the format TensorBoard reads)."""

    def __init__(self, logdir: str | Path) -> None:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(logdir))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
