"""Turn plain YAML data into typed dataclasses, with errors that name the path and the fix.

Ludwig's lesson: validate the whole config against a schema before importing a framework, so
a typo costs a second and reads ``unknown key 'trainer.optimiser' (did you mean: optimizer?)``
instead of a traceback minutes into a run. Dataclasses are the schema: field types give the
type checks, ``F(default, help, ge=0, le=1)`` the default, the ranges and the docs. Every spec
of every package declares its knobs with :func:`F` and is built by :func:`build`.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import field
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from lingjie.errors import ConfigError

_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def F(default: Any = None, help: str = "", **meta: Any) -> Any:  # noqa: N802 - short field maker
    """A dataclass field with a default, a help text and optional ge/gt/le/lt ranges.

    The one field maker of every spec, so every knob carries the metadata that :func:`build`
    (ranges), the error messages (help) and ``trainer.schema.defaults`` (the group YAML files)
    read. A list, dict or dataclass default is deep-copied per instance: no two configs share
    a mutable default. ``interpolation="${...}"``: what the group YAML file holds instead of the
    default (e.g. a Hydra resolver), see ``trainer.schema.defaults``.
    """
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def close_names(name: str, options: typing.Iterable[str], n: int = 3) -> list[str]:
    """The closest valid names to ``name`` (for did-you-mean messages)."""
    options = list(options)
    found = difflib.get_close_matches(name, options, n=n, cutoff=0.5)
    if len(found) > 1:  # a near-certain match hides the merely similar ones (optimiser -> optimizer)
        ratio = [difflib.SequenceMatcher(None, name, f).ratio() for f in found]
        # a near-certain match (one letter off) hides the merely similar: optimiser -> optimizer
        # (0.89), not init_optimizer (0.70); deepfn -> deepfm (0.83), not xdeepfm (0.77)
        slack = 0.05 if ratio[0] >= 0.8 else 0.2
        found = [f for f, r in zip(found, ratio) if r >= ratio[0] - slack]
    if not found:
        lowered = {o.lower(): o for o in options}
        found = [lowered[o] for o in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)]
    return found


def type_hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a dataclass (handles ``from __future__ import annotations``)."""
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def type_name(tp: Any) -> str:
    """A field type as users read it (``'adam' | 'sgd'``, ``int | null``, ``list of str``): the
    words of the error messages, ``python -m trainer explain`` and the JSON schema's docs."""
    return _type_name(tp)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from mapping ``data``; ``path`` is its dotted config path.

    The one builder of every spec (config groups, features, models, dynamic tables, saved
    feature state): unknown keys get a did-you-mean, values their type and range checks, and
    missing keys the dataclass default. An instance of ``cls`` is taken as already built.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping, got {type(data).__name__} {data!r}")
    hints = type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(_join(path, str(key)), "unknown key", close_names(str(key), fields))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        fpath = _join(path, name)
        if name in data:
            value = convert(hints[name], data[name], fpath)
            _check_range(f, value, fpath)
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(fpath, "required key is missing" + _help(f))
    return cls(**kwargs)


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help")
    return f" ({text})" if text else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def chosen_model(raw: dict[str, Any] | None, models: dict[str, type], what: str) -> tuple[str, type]:
    """(name, spec class) of ``model.name`` in a domain's ``models`` registry; ConfigError naming
    the valid names (and the closest ones) when it is missing or unknown. ``what``: e.g. "text"."""
    if not raw or "name" not in raw:
        raise ConfigError("model.name", f"no model chosen; pick one with model=<name> ({', '.join(models)})")
    name = str(raw["name"])
    if name not in models:
        raise ConfigError("model.name", f"unknown {what} model {name!r}; valid: {', '.join(models)}",
                          close_names(name, models))
    return name, models[name]


def _check_range(f: dataclasses.Field, value: Any, path: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    meta = f.metadata
    if "ge" in meta and value < meta["ge"]:
        raise ConfigError(path, f"must be >= {meta['ge']}, got {value}")
    if "gt" in meta and value <= meta["gt"]:
        raise ConfigError(path, f"must be > {meta['gt']}, got {value}")
    if "le" in meta and value > meta["le"]:
        raise ConfigError(path, f"must be <= {meta['le']}, got {value}")
    if "lt" in meta and value >= meta["lt"]:
        raise ConfigError(path, f"must be < {meta['lt']}, got {value}")


def convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against type ``tp`` and convert it (e.g. int -> float, dict -> dataclass)."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(path, f"must not be null; expected {_type_name(tp)}")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
    if value is None:
        raise ConfigError(path, f"must not be null; expected {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            sugg = close_names(str(value), [str(c) for c in choices])
            raise ConfigError(path, f"must be one of {', '.join(map(str, choices))}; got {value!r}", sugg)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        return [convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {type(value).__name__} {value!r}")
        _, val_tp = get_args(tp)
        return {str(k): convert(val_tp, v, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(path, f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(path, f"expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")


def to_plain(obj: Any) -> Any:
    """A dataclass tree back to plain dicts/lists (for saving and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
