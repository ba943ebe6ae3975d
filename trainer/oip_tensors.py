"""Open Inference Protocol (KServe v2) tensors as plain JSON, for the domains' serving adapters.

A tensor is ``{"name", "shape", "datatype", "data"}`` with ``data`` flat and row-major. The
domains turn their inputs and outputs into these; the checks raise
:class:`lingjie.errors.RequestError` naming ``inputs[k].<key>``, so a client sees which tensor
of its request is wrong.
"""
from __future__ import annotations

from typing import Any

from lingjie.errors import RequestError


def tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    """An Open Inference Protocol tensor (``data`` flat, row-major)."""
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": data}


def v2_string_columns(inputs: list[dict], names: tuple[str, ...]) -> dict[str, list[str]]:
    """The BYTES input tensors named in ``names`` as equally long lists of strings (one per
    instance); RequestError naming ``inputs[k]...`` for an unknown name, a wrong datatype, a
    shape that is not [N] or does not match its data, or columns of different lengths."""
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs", f"expected a non-empty list of tensors named {', '.join(names)}")
    columns: dict[str, list[str]] = {}
    for k, t in enumerate(inputs):
        where = f"inputs[{k}]"
        if not isinstance(t, dict) or t.get("name") not in names:
            got = t.get("name") if isinstance(t, dict) else type(t).__name__
            raise RequestError(f"{where}.name", f"expected one of {', '.join(names)}, got {got!r}")
        if t.get("datatype") != "BYTES":
            raise RequestError(f"{where}.datatype", f"expected BYTES, got {t.get('datatype')!r}")
        data, shape = t.get("data"), t.get("shape")
        if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
            raise RequestError(f"{where}.data", "expected a flat list of strings")
        if shape != [len(data)]:
            raise RequestError(f"{where}.shape", f"expected [{len(data)}] (one element per instance), got {shape!r}")
        if t["name"] in columns:
            raise RequestError(f"{where}.name", f"tensor {t['name']!r} given twice")
        columns[t["name"]] = data
    if len({len(c) for c in columns.values()}) > 1:
        raise RequestError("inputs", "the input tensors hold different numbers of instances: " +
                           ", ".join(f"{k}={len(c)}" for k, c in columns.items()))
    return columns


def v2_string_rows(t: dict, where: str) -> list[list[str]]:
    """A BYTES tensor of shape [N, W] as N lists of strings, trailing "" (padding) dropped:
    ragged rows such as the words of several sentences."""
    data, shape = t.get("data"), t.get("shape")
    if t.get("datatype") != "BYTES":
        raise RequestError(f"{where}.datatype", f"expected BYTES, got {t.get('datatype')!r}")
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise RequestError(f"{where}.data", "expected a flat list of strings")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(d, int) and d >= 0 for d in shape)
            or shape[0] * shape[1] != len(data)):
        raise RequestError(f"{where}.shape", f"expected [N, W] with N * W = {len(data)} elements, got {shape!r}")
    rows = [data[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])]
    for row in rows:
        while row and row[-1] == "":
            row.pop()
    return rows
