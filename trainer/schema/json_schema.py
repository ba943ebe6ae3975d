"""A JSON Schema (draft 2020-12) of the whole config tree, rendered from the dataclasses.

Why: a YAML language server given this file (``# yaml-language-server: $schema=...`` at the top
of an experiment) completes keys, shows each knob's help on hover and underlines a typo while
it is typed, before ``python -m trainer`` would reject it. The dataclasses stay the one source
of truth: types, defaults, ``help`` (descriptions), Literals (enums), ge/gt/le/lt (ranges).
"""
from __future__ import annotations

import dataclasses
import json
import types
from typing import Any, Literal, Union, get_args, get_origin

from lingjie.schema import to_plain, type_hints
from trainer.schema.defaults import field_default, knobs
from trainer.schema.spec import RootSpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_RANGES = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
# keys an experiment file or a composed config may hold besides the knobs
_NOT_KNOBS = {"defaults": {"type": "array", "description": "Hydra defaults list"},
              "hydra": {"description": "Hydra's own settings"},
              "hparams_search": {"description": "an AutoML sweep (README: AutoML)"}}


def type_schema(tp: Any, default: Any = None) -> dict[str, Any]:
    """The schema of values of Python type ``tp`` (as :func:`lingjie.schema.convert` accepts them);
    ``default``: the default instance of a group whose defaults differ from its class's."""
    origin = get_origin(tp)
    if tp is Any:
        return {}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (Union, types.UnionType):
        return {"anyOf": [type_schema(a) for a in get_args(tp)]}
    if origin in (list, tuple):
        args = get_args(tp)
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(get_args(tp)[1])}
    if dataclasses.is_dataclass(tp):
        return object_schema(tp, parent=default if isinstance(default, tp) else None)
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    return {}


def object_schema(cls: type, fixed: dict[str, Any] | None = None, parent: Any = None) -> dict[str, Any]:
    """A closed object (``additionalProperties: false``) of ``cls``'s knobs; ``fixed``: knobs whose
    value is pinned (``{"name": "deepfm"}``), so an ``anyOf`` of models picks by name."""
    hints = type_hints(cls)
    props: dict[str, Any] = {}
    required = []
    for f in knobs(cls):
        default = field_default(f, parent)
        schema = {"const": fixed[f.name]} if fixed and f.name in fixed else type_schema(hints[f.name], default)
        if f.metadata.get("help"):
            schema["description"] = f.metadata["help"]
        schema.update({_RANGES[k]: v for k, v in f.metadata.items() if k in _RANGES})
        if default is not dataclasses.MISSING:
            if not dataclasses.is_dataclass(default) and _is_json(to_plain(default)):
                schema["default"] = to_plain(default)
        else:
            required.append(f.name)
        props[f.name] = schema
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        out["description"] = " ".join(cls.__doc__.split())
    if required:
        out["required"] = required
    return out


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _choice(options: dict[str, type], key: str | None) -> dict[str, Any]:
    """``anyOf`` the classes of ``options`` (name -> class), each with ``key`` (if any) pinned to
    its names."""
    by_class: dict[type, list[str]] = {}
    for name, cls in options.items():
        by_class.setdefault(cls, []).append(name)
    choices = []
    for cls, names in by_class.items():
        schema = object_schema(cls)
        if key is None:
            choices.append(schema)
            continue
        schema["properties"][key] = {**schema["properties"].get(key, {}), "enum": names}
        schema["properties"][key].pop("type", None)
        schema["required"] = sorted(set(schema.get("required", [])) | {key})
        choices.append(schema)
    return {"anyOf": choices} if choices else {}


def root_schema(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole tree; ``parts``: domain name -> its ``schema_parts()`` (data class, feature types,
    models). ``data`` is any domain's data group, ``model`` any model (picked by ``name``),
    ``features`` a mapping of features (picked by ``type``)."""
    schema = object_schema(RootSpec)
    props = schema["properties"]
    props["data"] = {**_choice({d: p["data"] for d, p in parts.items()}, None),  # picked by shape
                     "description": props["data"].get("description", "")}
    models = {n: c for p in parts.values() for n, c in p["models"].items()}
    features = {n: c for p in parts.values() for n, c in p["features"].items()}
    props["model"] = {**_choice(models, "name"), "description": props["model"].get("description", "")}
    props["features"] = {"type": "object", "additionalProperties": _choice(features, "type"),
                         "description": props["features"].get("description", "")}
    props.update(_NOT_KNOBS)
    return {"$schema": DRAFT, "title": "Lingjie config", **schema}


def domain_parts() -> dict[str, dict[str, Any]]:
    """Each domain's ``schema_parts()``, found by name (trainer imports no domain package)."""
    from trainer.domains import DOMAINS, domain_module

    return {name: domain_module(name).schema_parts() for name in DOMAINS}
