"""Bundled datasets: ``ensure_dataset(name)`` returns a prepared local directory.

CLI: ``python -m dataio.datasets list | fetch NAME [--data-dir DIR] |
synth criteo --rows N --out DIR [--seed S] [--files K]``.
"""
from __future__ import annotations

from dataio.datasets.cache import data_root, ensure_dataset
from dataio.datasets.criteo_synth import write_criteo_synth
from dataio.datasets.registry import DATASETS

__all__ = ["DATASETS", "data_root", "ensure_dataset", "write_criteo_synth"]
