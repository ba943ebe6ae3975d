"""Progress bars for the trainer: the one helper lives in :mod:`dataio.progress` (the lowest
layer that dataset preparation, feature fitting, training and AutoML all import); this name is
kept so trainer code and callers of ``trainer.progress.progress`` keep working."""
from __future__ import annotations

from dataio.progress import progress

__all__ = ["progress"]
