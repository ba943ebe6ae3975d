"""A test callback: copy ``<run>/export`` (base + deltas) aside when the fit ends, before the
final full export replaces it (``trainer.callbacks: [{_target_: tests.continuous.keep_export.KeepExport}]``)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trainer.callbacks import Callback


class KeepExport(Callback):
    def __init__(self, dest: str) -> None:
        self.dest = Path(dest)

    def on_fit_end(self, loop: Any) -> None:
        shutil.copytree(loop.run.export, self.dest)
