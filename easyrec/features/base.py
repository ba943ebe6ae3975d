"""The interface every feature type implements, so the pipeline can loop over features."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from easyrec.features.batch import Batch
from easyrec.features.info import FeatureInfo


class Feature:
    """One configured feature: fitted by ``fit_batch``/``finish_fit``, applied by
    ``transform`` (which writes this feature's arrays into a :class:`Batch`)."""

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    @property
    def column(self) -> str:
        """The input column (default: the feature's own name)."""
        return self.config.column or self.name

    def input_columns(self) -> list[str]:
        return [self.column]

    def fit_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Observe one training batch (no-op for features with nothing to fit)."""

    def finish_fit(self) -> None:
        """End of the fitting pass."""

    def transform(self, batch: pa.RecordBatch | pa.Table, out: Batch) -> None:
        raise NotImplementedError

    def info(self) -> FeatureInfo:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Fitted state as JSON-ready values (shared id mappings are saved by the pipeline)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""
