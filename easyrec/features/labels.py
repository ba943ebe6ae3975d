"""Label columns -> float32 [B] targets (optionally binarised by a threshold).

A null label cannot be trained on and silently filling it would bias the model, so it is a
DataError naming the column and the first bad row (sources normally drop or reject such
rows before they get here).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easyrec.features.columns import get_column
from easyrec.features.config import LabelConfig
from lingjie.errors import DataError


def label_column(name: str, config: LabelConfig) -> str:
    return config.column or name


def transform_label(name: str, config: LabelConfig, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """float32 [B]: the column's values, or 1.0/0.0 for column >= threshold."""
    column = label_column(name, config)
    col = get_column(batch, column)
    try:
        x = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"label '{name}': column '{column}' ({col.type}) is not numeric: {exc}"
        ) from exc
    bad = np.isnan(x)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"label '{name}': column '{column}' has {int(bad.sum())} null/NaN value(s) in this "
            f"batch (first at batch row {first}); drop or fill those rows in the data source",
            row=first,
        )
    if config.threshold is not None:
        return (x >= config.threshold).astype(np.float32)
    return x.astype(np.float32)
