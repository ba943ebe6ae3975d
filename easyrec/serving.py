"""Score raw rows with an exported model: the same feature code as training, then the program.

    from easyrec.serving import ExportedModel
    model = ExportedModel("outputs/movielens_deepfm/<run>/export")
    scores = model.predict(pyarrow_table_or_pandas_frame_or_list_of_dicts)   # {"like": array}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lingjie.errors import DataError


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
        import json

        from easyrec.features.pipeline import FeaturePipeline

        self.dir = Path(export_dir)
        if not (self.dir / "meta.json").exists():
            raise DataError("not an export directory (no meta.json)", file=str(self.dir))
        self.meta = json.loads((self.dir / "meta.json").read_text())
        self.pipeline = FeaturePipeline.load(str(self.dir / "feature_state.json"))
        if self.meta["format"] == "saved_model":
            import tensorflow as tf

            self._loaded = tf.saved_model.load(str(self.dir / self.meta["program"]))
            import re

            serve = self._loaded.signatures["serving_default"]
            # SavedModel signatures rename "f.values" to "f_values" (argument names must be identifiers)
            self._call = lambda flat: {k: v.numpy() for k, v in
                                       serve(**{re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in flat.items()}).items()}
        else:
            import torch

            from trainer.torch_backend.programs import load_program
            from trainer.torch_backend.tensors import as_tensor

            program, _ = load_program(self.dir)
            cpu = torch.device("cpu")

            def call(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                with torch.no_grad():
                    outputs = program({k: as_tensor(v, cpu) for k, v in flat.items()})
                return {k: v.numpy() for k, v in outputs.items()}

            self._call = call

    def predict(self, rows: Any, batch_size: int = 8192) -> dict[str, np.ndarray]:
        table = to_record_batch(rows)
        wanted = set(self.meta["inputs"])
        out: dict[str, list[np.ndarray]] = {}
        for rb in table.to_batches(max_chunksize=batch_size):
            flat = self.pipeline.transform(rb, with_labels=False).to_flat()
            for k, v in self._call({k: v for k, v in flat.items() if k in wanted}).items():
                out.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in out.items()}
