"""One row of the reliability table: a bad input or a fault, run through the real CLI.

Each ``cases_*.py`` module in this package holds ``CASES: list[Case]``; ``test_table.py``
runs every row as ``python -m trainer ARGS`` in a fresh temp dir and asserts the exit code,
exactly one ``error:`` line on stderr matching ``message`` (never a traceback), and, through
``check``, what the run left on disk. ``{tmp}`` in args / env is the temp dir; the output
root is ``{tmp}/out`` unless a row sets ``paths.output_root`` itself.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# the smallest real training run (MovieLens, deepfm): a few seconds end to end
SMALL = ["+experiment=movielens_deepfm", "data.limit_train_rows=600", "data.limit_eval_rows=400",
         "data.batch_size=128", "data.eval_batch_size=512", "trainer.epochs=1", "trainer.progress_bar=false",
         "trainer.plots=false"]


@dataclass
class Case:
    id: str
    args: list[str]
    code: int = 2
    message: str = ""  # regex searched in the one stderr line starting with "error:"
    setup: Callable[[Path], None] | None = None  # writes files under the temp dir first
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[Path, subprocess.CompletedProcess], None] | None = None  # what is left on disk
    before: str = ""  # what main did before issue 17 (for the closing note's table)


def run_dirs(tmp: Path, experiment: str = "movielens_deepfm") -> list[Path]:
    """The run directories a case left under ``{tmp}/out/<experiment>``."""
    base = tmp / "out" / experiment
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
