"""Score raw rows with an exported model: the same feature code as training, then the program.

    from trainer.serving import ExportedModel
    model = ExportedModel("outputs/movielens_deepfm/<run>/export")
    scores = model.predict(pyarrow_table_or_pandas_frame_or_list_of_dicts)   # {"like": array}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trainer.errors import DataError


def to_record_batch(rows: Any) -> pa.Table:
    """Accept a pyarrow Table/RecordBatch, a pandas DataFrame or a list of dicts."""
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if isinstance(rows, list):
        return pa.Table.from_pylist(rows)
    if hasattr(rows, "columns") and hasattr(rows, "iloc"):
        return pa.Table.from_pandas(rows, preserve_index=False)
    raise DataError(f"cannot score rows of type {type(rows).__name__}; pass a pyarrow Table, DataFrame or list of dicts")


class ExportedModel:
    """A loaded export directory: ``predict(rows) -> {task: scores}``."""

    def __init__(self, export_dir: str | Path) -> None:
        import torch  # noqa: F401 - the program needs it

        from easyrec.features.pipeline import FeaturePipeline
        from trainer.torch_backend.export import load_program

        self.dir = Path(export_dir)
        if not (self.dir / "meta.json").exists():
            raise DataError("not an export directory (no meta.json)", file=str(self.dir))
        self.program, self.meta = load_program(self.dir)
        self.pipeline = FeaturePipeline.load(str(self.dir / "feature_state.json"))

    def predict(self, rows: Any, batch_size: int = 8192) -> dict[str, np.ndarray]:
        import torch

        table = to_record_batch(rows)
        out: dict[str, list[np.ndarray]] = {}
        with torch.no_grad():
            for rb in table.to_batches(max_chunksize=batch_size):
                batch = self.pipeline.transform(rb, with_labels=False)
                inputs = {k: torch.from_numpy(v) for k, v in batch.to_flat().items()}
                for k, v in self.program(inputs).items():
                    out.setdefault(k, []).append(v.numpy())
        return {k: np.concatenate(v) for k, v in out.items()}
