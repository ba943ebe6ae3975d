"""The rec adapter of ``lingjie serve``: JSON instances (one dict of raw columns per row) in,
one ``{task: score}`` dict per row out, through :class:`easyrec.serving.ExportedModel`.

Why an adapter and not ExportedModel alone: a server must reject a bad row with a 4xx that
names the row and the column *before* the row joins a coalesced batch (one bad row must not
fail its batch-mates), and rows from different requests must become one Arrow table with one
type per column (``pa.Table.from_pylist`` refuses a column that is an int in one request and
a string in the next). ``predict`` therefore builds each column with an explicit type, in the
canonical form the feature code itself would produce, so served scores equal
``trainer.mode=predict`` scores on the same rows.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lingjie.errors import RequestError
from trainer import oip_tensors

# What a column holds, by the feature types that read it
NUMBER, SCALAR, MULTI = "number", "scalar", "multi"
_KIND_OF_TYPE = {"raw": NUMBER, "id": SCALAR, "combo": SCALAR, "tag": MULTI, "sequence": MULTI}
_RANK = {SCALAR: 0, MULTI: 1, NUMBER: 2}
_EXPECTED = {NUMBER: "a number", SCALAR: "a string or a number", MULTI: "a string or a list of strings/numbers"}
V2_TYPES = {"BYTES": str, "BOOL": bool, "INT8": int, "INT16": int, "INT32": int, "INT64": int, "UINT8": int,
            "UINT16": int, "UINT32": int, "UINT64": int, "FP16": float, "FP32": float, "FP64": float}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar_text(v: Any) -> str | None:
    """The string an id column holds for ``v``, as ``easyrec.features.columns.as_string_array``
    writes it (integral floats without a fraction, NaN as null)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return str(int(v))
        return pa.array([v], pa.float64()).cast(pa.string())[0].as_py()
    return str(int(v)) if isinstance(v, bool) else str(v)


class Adapter:
    """Serving adapter of the rec domain (see ``trainer/serve`` for the interface)."""

    def __init__(self, export_dir: Path) -> None:
        from easyrec.serving import ExportedModel

        self.model = ExportedModel(export_dir)
        self.meta: dict[str, Any] = self.model.meta
        self.name_hint: str = str(self.meta.get("experiment") or "")
        self.columns: list[str] = list(self.meta["input_columns"])
        self.tasks: list[str] = list(self.meta["tasks"])
        self.kinds: dict[str, str] = {c: SCALAR for c in self.columns}
        self.separators: dict[str, str] = {}
        for feature in self.model.pipeline.features.values():
            cfg = feature.config
            kind = _KIND_OF_TYPE.get(getattr(cfg, "type", ""), SCALAR)
            for col in feature.input_columns():
                if _RANK[kind] > _RANK[self.kinds.get(col, SCALAR)]:  # number > multi > scalar: the strictest
                    self.kinds[col] = kind
                if kind == MULTI:
                    self.separators[col] = cfg.separator

    # ------------------------------------------------------------------ validation
    def check(self, instances: list[Any]) -> None:
        """RequestError at ``instances[i].<column>`` for the first row that cannot be scored:
        not an object, a missing column, or a value of the wrong kind for its feature."""
        for i, row in enumerate(instances):
            if not isinstance(row, dict):
                raise RequestError(f"instances[{i}]", f"must be an object of column values, got {_json_type(row)}")
            for col in self.columns:
                if col not in row:
                    raise RequestError(f"instances[{i}].{col}", f"missing column '{col}' "
                                       f"(the model reads: {', '.join(self.columns)})")
                if not self._fits(self.kinds[col], row[col]):
                    raise RequestError(f"instances[{i}].{col}", f"expected {_EXPECTED[self.kinds[col]]}, "
                                       f"got {_json_type(row[col])}")

    @staticmethod
    def _fits(kind: str, v: Any) -> bool:
        if v is None:
            return True
        if kind == NUMBER:
            return _is_number(v)
        if kind == SCALAR:
            return isinstance(v, str) or _is_number(v)
        if isinstance(v, list):
            return all(x is None or isinstance(x, str) or _is_number(x) for x in v)
        return isinstance(v, str)

    # ------------------------------------------------------------------ prediction
    def table(self, instances: list[dict[str, Any]]) -> pa.Table:
        """One Arrow table of the checked rows, each column with one type (see the module doc)."""
        arrays = {}
        for col in self.columns:
            values = [row.get(col) for row in instances]
            kind = self.kinds[col]
            if kind == NUMBER:
                arrays[col] = pa.array([None if v is None else float(v) for v in values], pa.float64())
            elif kind == SCALAR:
                arrays[col] = pa.array([_scalar_text(v) for v in values], pa.string())
            elif all(v is None or isinstance(v, str) for v in values):
                arrays[col] = pa.array(values, pa.string())
            else:  # lists (maybe mixed with separated strings): list<string>, split as list_parts would
                sep = self.separators.get(col, "|")
                arrays[col] = pa.array([_as_items(v, sep) for v in values], pa.list_(pa.string()))
        return pa.table(arrays)

    def predict(self, instances: list[Any]) -> list[dict[str, Any]]:
        """Score the rows in one forward pass; one ``{task: score}`` per row, JSON-ready."""
        scores = self.model.predict(self.table(instances))
        out: list[dict[str, Any]] = [{} for _ in instances]
        for task in self.tasks:
            values = np.asarray(scores[task]).tolist()
            for row, v in zip(out, values):
                row[task] = v
        return out

    def example_instances(self) -> list[Any]:
        """Two valid rows for warm-up: the first vocabulary entries, the mean of numbers."""
        state = self.model.pipeline.state_dict()
        rows: list[dict[str, Any]] = [{}, {}]
        for col in self.columns:
            vocab = _vocabulary(state, col)
            for j, row in enumerate(rows):
                if self.kinds[col] == NUMBER:
                    row[col] = float(_mean(state, col)) + j
                else:
                    row[col] = vocab[j % len(vocab)] if vocab else f"warmup{j}"
        return rows

    # ------------------------------------------------------------------ delta exports (trainer.serve.deltas)
    @property
    def delta_step(self) -> int | None:
        return self.model.delta_step

    def pending_deltas(self) -> list[Path]:
        return self.model.pending_deltas()

    def with_delta(self, path: Path) -> "Adapter":
        """A copy of this adapter whose model has the delta at ``path`` applied."""
        import copy

        new = copy.copy(self)
        new.model = self.model.with_delta(path)
        return new

    # ------------------------------------------------------------------ Open Inference Protocol
    def v2_inputs_to_instances(self, inputs: list[dict]) -> list[Any]:
        """OIP tensors (one per column, shape [N] or [N, 1]) -> N row dicts."""
        n: int | None = None
        columns: dict[str, list[Any]] = {}
        for j, tensor in enumerate(inputs):
            name = tensor.get("name")
            if name not in self.kinds:
                raise RequestError(f"inputs[{j}].name", f"unknown input {name!r}; inputs: {', '.join(self.columns)}")
            if name in columns:
                raise RequestError(f"inputs[{j}].name", f"input {name!r} given twice")
            data = v2_tensor_values(tensor, j)
            if n is not None and len(data) != n:
                raise RequestError(f"inputs[{j}].shape", f"input {name!r} has {len(data)} rows, earlier inputs {n}")
            n = len(data)
            columns[name] = data
        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise RequestError("inputs", f"missing input(s) {', '.join(missing)}")
        return [{c: columns[c][i] for c in columns} for i in range(n or 0)]

    def v2_outputs(self, predictions: list[dict]) -> list[dict]:
        """One FP32 tensor per task: shape [N] (or [N, K] for vector outputs)."""
        outputs = []
        for task in self.tasks:
            arr = np.asarray([p[task] for p in predictions], dtype=np.float64)
            outputs.append(oip_tensors.tensor(task, list(arr.shape), "FP32", arr.reshape(-1).tolist()))
        return outputs


def v2_tensor_values(tensor: dict, j: int) -> list[Any]:
    """The values of one OIP input tensor of shape [N] or [N, 1], checked against its datatype."""
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if datatype not in V2_TYPES:
        raise RequestError(f"inputs[{j}].datatype", f"unknown datatype {datatype!r}; one of {', '.join(V2_TYPES)}")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 2 or not all(type(d) is int and d >= 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)):
        raise RequestError(f"inputs[{j}].shape", f"must be [N] or [N, 1] (one value per row), got {shape!r}")
    if not isinstance(data, list):
        raise RequestError(f"inputs[{j}].data", f"must be a list, got {_json_type(data)}")
    flat = [x for sub in data for x in sub] if data and all(isinstance(x, list) for x in data) and len(shape) == 2 \
        else data
    if len(flat) != shape[0]:
        raise RequestError(f"inputs[{j}].data", f"has {len(flat)} values, shape {shape} needs {shape[0]}")
    want = V2_TYPES[datatype]
    for i, v in enumerate(flat):
        ok = v is None or (isinstance(v, str) if want is str else isinstance(v, bool) if want is bool
                           else _is_number(v) and (want is float or float(v).is_integer()))
        if not ok:
            raise RequestError(f"inputs[{j}].data[{i}]", f"{_json_type(v)} is not a {datatype} value")
    return list(flat)


def _as_items(v: Any, sep: str) -> list[str] | None:
    """A multi-value cell as a list of strings: lists keep their non-empty items, strings split
    on ``sep`` and trimmed (as ``easyrec.features.columns.list_parts`` does)."""
    if v is None:
        return None
    if isinstance(v, str):
        return [p.strip() for p in v.split(sep) if p.strip()]
    return [t for t in (_scalar_text(x) for x in v) if t]


def _vocabulary(state: dict[str, Any], col: str) -> list[Any]:
    for name, cfg in state.get("features", {}).items():
        if (cfg.get("column") or name) == col:
            mapping = state.get("mappings", {}).get(cfg.get("embedding_name") or name, {})
            return list(mapping.get("vocabulary") or [])[:2]
    return []


def _mean(state: dict[str, Any], col: str) -> float:
    for name, cfg in state.get("features", {}).items():
        if (cfg.get("column") or name) == col:
            mean = state.get("feature_state", {}).get(name, {}).get("mean")
            return float(mean) if isinstance(mean, (int, float)) else 0.0
    return 0.0


def _json_type(v: Any) -> str:
    """The JSON name of a value's type, for error messages a client can act on."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "a list" if isinstance(v, list) else "an object"
