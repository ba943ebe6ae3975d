"""Read any Lingjie checkpoint (torch ``.pt`` file or TF ``.tfckpt`` directory) without
knowing its backend first: evaluate/predict/export modes look at ``meta`` to rebuild the
feature pipeline and the model, then hand the file to the right engine.

Checkpoints hold tensors and plain data only, so loading one never runs code: a ``.pt`` is
read with ``torch.load(weights_only=True)``, a TF checkpoint's metadata is ``meta.json``.
What the loop keeps in its meta that is not plain data (numpy arrays and scalars: the numpy
RNG state, the collected train predictions) goes through :func:`to_safe` on the way in and
:func:`from_safe` on the way out, here and nowhere else. A numpy value becomes
``{"__ndarray__": dtype, "shape": [...], "data": base64 of its bytes}`` -- exact for every
fixed-width dtype, one string for the unpickler (not a million floats), and valid JSON, so
torch and TF checkpoints share one encoding.
"""
from __future__ import annotations

import base64
import json
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from lingjie.errors import DataError

TF_SUFFIX = ".tfckpt"
META_FILE = "meta.json"
OLD_META_FILE = "meta.pkl"  # TF metadata before checkpoints became weights-only: refused
NDARRAY_TAG = "__ndarray__"

REFUSED = ("refusing to load it: it holds Python objects that would run code when loaded (not a Lingjie "
           "checkpoint, or one written by an older Lingjie, before checkpoints became weights-only); "
           "re-train or re-export it")


def checkpoint_backend(path: Path) -> str:
    return "tf" if path.suffix == TF_SUFFIX else "torch"


PLAIN_TYPES = (type(None), bool, int, float, str)
SAFE_DICTS = (dict, OrderedDict)  # dict types torch.load(weights_only=True) rebuilds


def _plain_scalar(obj: Any) -> Any:
    """``obj`` as an exact bool/int/float/str (a subclass, e.g. an IntEnum or a str enum, would be
    pickled by its class name, which weights_only refuses), or None when it is not a scalar."""
    for base in (bool, int, float):
        if isinstance(obj, base):
            return base(obj)
    return str.__str__(obj) if isinstance(obj, str) else None


def to_safe(obj: Any) -> Any:
    """``obj`` with every numpy array / scalar replaced by its tagged plain form.

    Containers are rebuilt only where something inside changed, so a model ``state_dict``
    (an OrderedDict carrying ``_metadata``) passes through as the same object. Anything that
    would need pickle to load (a class instance, a function) raises ``TypeError`` here, at
    save time, instead of making a checkpoint that cannot be read."""
    if type(obj) in PLAIN_TYPES:
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):  # before scalars: np.float64 is a float subclass
        arr = np.asarray(obj)
        if arr.dtype.hasobject:
            return {NDARRAY_TAG: "O", "shape": list(arr.shape), "data": [to_safe(x) for x in arr.ravel().tolist()]}
        return {NDARRAY_TAG: arr.dtype.str, "shape": list(arr.shape),
                "data": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")}
    if type(obj).__module__.split(".")[0] == "torch":  # tensors, dtypes, sizes, devices
        return obj
    if isinstance(obj, dict):
        items = [(_safe_key(k), to_safe(v)) for k, v in obj.items()]
        if type(obj) in SAFE_DICTS and all(nk is k and nv is v for (nk, nv), (k, v) in zip(items, obj.items())):
            return obj
        return _rebuilt(obj, items)
    if isinstance(obj, (list, tuple)):
        out = [to_safe(v) for v in obj]
        cls = list if isinstance(obj, list) else tuple  # a namedtuple / list subclass: its plain base
        if type(obj) is cls and all(new is old for new, old in zip(out, obj)):
            return obj
        return cls(out)
    plain = _plain_scalar(obj)
    if plain is not None:
        return plain
    raise TypeError(f"a checkpoint cannot hold a {type(obj).__module__}.{type(obj).__name__} "
                    "(only tensors, numpy arrays and plain data load without running code)")


def _safe_key(key: Any) -> Any:
    """A dict key the unpickler accepts: numpy / subclassed scalars become exact Python ones."""
    if type(key) in PLAIN_TYPES or isinstance(key, tuple):
        return key
    if isinstance(key, np.generic):
        return key.item()
    plain = _plain_scalar(key)
    if plain is None:
        raise TypeError(f"a checkpoint cannot hold a dict key of type {type(key).__name__}")
    return plain


def _rebuilt(obj: dict, items: list[tuple[Any, Any]]) -> dict:
    """A dict (an OrderedDict stays one) with new items and ``obj``'s attributes (a module
    ``state_dict``'s ``_metadata`` holds the module versions ``load_state_dict`` reads); other
    dict subclasses (defaultdict, ...) become plain dicts: the unpickler refuses their class."""
    out = (type(obj) if type(obj) in SAFE_DICTS else dict)(items)
    if getattr(obj, "__dict__", None):
        out.__dict__.update(obj.__dict__)
    return out


def from_safe(obj: Any) -> Any:
    """The inverse of :func:`to_safe`: tagged forms become numpy arrays (0-d: numpy scalars)
    again, bit for bit; everything else is returned as it is."""
    if isinstance(obj, dict):
        if NDARRAY_TAG in obj:
            return _decode_array(obj)
        items = [(k, from_safe(v)) for k, v in obj.items()]
        if all(new is old for (_, new), old in zip(items, obj.values())):
            return obj
        return _rebuilt(obj, items)
    if isinstance(obj, (list, tuple)):
        out = [from_safe(v) for v in obj]
        if all(new is old for new, old in zip(out, obj)):
            return obj
        return type(obj)(out)
    return obj


def _decode_array(node: dict[str, Any]) -> Any:
    shape = tuple(int(s) for s in node["shape"])
    if node[NDARRAY_TAG] == "O":
        arr = np.empty(len(node["data"]), dtype=object)
        arr[:] = [from_safe(x) for x in node["data"]]
        arr = arr.reshape(shape)
    else:
        arr = np.frombuffer(base64.b64decode(node["data"]), dtype=np.dtype(node[NDARRAY_TAG])).reshape(shape).copy()
    return arr[()] if shape == () else arr


def meta_json_bytes(meta: dict[str, Any]) -> bytes:
    """A TF checkpoint's ``meta.json`` content (numpy values tagged, see :func:`to_safe`)."""
    return json.dumps(to_safe(meta)).encode()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _read_tf_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META_FILE
    if not meta_file.exists():
        if (path / OLD_META_FILE).exists():
            raise DataError(f"refusing to load it: its metadata is {OLD_META_FILE} (pickled Python objects that "
                            "would run code when loaded), written by an older Lingjie; re-train or re-export it",
                            file=str(path))
        raise DataError(f"not a complete TF checkpoint ({META_FILE} missing)", file=str(path))
    try:
        meta = json.loads(meta_file.read_bytes())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
        raise DataError(f"cannot read TF checkpoint metadata {META_FILE} ({_first_line(exc)})",
                        file=str(path)) from None
    if not isinstance(meta, dict):
        raise DataError(f"{META_FILE} is not a Lingjie checkpoint's metadata (not a JSON object)", file=str(path))
    return _decoded(meta, path)


def _decoded(obj: Any, path: Path) -> Any:
    """:func:`from_safe`, with a malformed array entry (bad dtype, shape or data) as one line."""
    try:
        return from_safe(obj)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DataError(f"a malformed array in the checkpoint ({_first_line(exc)})", file=str(path)) from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole torch checkpoint dict, or ``{"meta": ...}`` of a TF checkpoint directory.

    A ``.pt`` is loaded with ``weights_only=True``: a file with a pickle payload (a crafted
    file, or an older Lingjie's checkpoint holding pickled numpy state) is refused with one
    line and its payload never runs."""
    path = Path(path)
    if path.suffix == TF_SUFFIX:
        return {"backend": "tf", "meta": _read_tf_meta(path)}
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(REFUSED, file=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - any other failure means an unusable checkpoint
        raise DataError(f"cannot read checkpoint ({_first_line(exc)})", file=str(path)) from None
    if not isinstance(state, dict) or "meta" not in state:
        raise DataError("not a Lingjie checkpoint", file=str(path))
    return _decoded(state, path)


def read_meta(path: str | Path) -> dict[str, Any]:
    return read_checkpoint(path)["meta"]
