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
            from trainer.torch_backend.programs import load_program

            program, _ = load_program(self.dir)
            self._bind(program)
        self.version = str(self.meta.get("version") or "")
        self.delta_step: int | None = None  # the step of the last delta applied (None: the export as loaded)

    def _bind(self, program: Any) -> None:
        import torch

        from trainer.torch_backend.tensors import as_tensor

        cpu = torch.device("cpu")

        def call(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            with torch.no_grad():
                outputs = program({k: as_tensor(v, cpu) for k, v in flat.items()})
            return {k: v.numpy() for k, v in outputs.items()}

        self._program, self._call = program, call

    # ----- delta exports (easyrec.delta_writer): patch the loaded program's weights
    def pending_deltas(self) -> list[Path]:
        """The delta dirs under ``<export>/deltas`` of this export's version that come after the
        last one applied, in step order."""
        from easyrec.delta_format import pending_chain

        if not self.version:
            return []
        return pending_chain(self.dir, self.version, self.delta_step)

    def with_delta(self, delta_dir: str | Path) -> "ExportedModel":
        """A copy of this model with ``delta_dir`` applied (this one is left as it is); DataError
        when the delta does not apply (format, sha256, base, chain): see easyrec.delta_apply."""
        import copy
        import warnings

        from easyrec.delta_apply import apply_delta

        if self.meta["format"] not in ("torch_export", "torchscript"):
            raise DataError(f"a {self.meta['format']} export cannot take deltas (torch_export / torchscript only)",
                            file=str(self.dir))
        with warnings.catch_warnings():  # torch.export's module copies its pytree specs (a FutureWarning)
            warnings.simplefilter("ignore", FutureWarning)
            program = copy.deepcopy(self._program)
        manifest = apply_delta(program, Path(delta_dir), self.version, self.delta_step)
        new = copy.copy(self)
        new._bind(program)
        new.delta_step = int(manifest["step"])
        return new

    def apply_delta(self, delta_dir: str | Path) -> int:
        """Apply ``delta_dir`` to this model (all of it or, on a DataError, nothing); returns its step."""
        new = self.with_delta(delta_dir)
        self._bind(new._program)
        self.delta_step = new.delta_step
        return int(new.delta_step)

    def apply_pending_deltas(self) -> list[int]:
        """Apply every pending delta in order (stops at the first that fails, raising its
        DataError: the ones before it stay applied); returns the steps applied."""
        return [self.apply_delta(path) for path in self.pending_deltas()]

    def predict(self, rows: Any, batch_size: int = 8192) -> dict[str, np.ndarray]:
        table = to_record_batch(rows)
        wanted = set(self.meta["inputs"])
        out: dict[str, list[np.ndarray]] = {}
        for rb in table.to_batches(max_chunksize=batch_size):
            flat = self.pipeline.transform(rb, with_labels=False).to_flat()
            for k, v in self._call({k: v for k, v in flat.items() if k in wanted}).items():
                out.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in out.items()}
