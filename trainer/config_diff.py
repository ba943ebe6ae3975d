"""Which model-shaping config keys differ between this command and a checkpoint.

Why: a checkpoint's weights only fit the model and features they were trained with. Resuming
with other values used to train silently at the old shape (or die with a size-mismatch
traceback after overwriting the run's config.yaml); evaluate / predict / export used the
checkpoint's model while recording the command line's. Each domain names the sections that
shape its model (``Recipe.model_config_keys``); this module compares and merges them.
"""
from __future__ import annotations

from typing import Any

_UNSET = "<unset>"


def get_path(cfg: dict[str, Any], dotted: str) -> Any:
    """``cfg`` at the dotted path (``_UNSET`` when a part is missing)."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _UNSET
        node = node[part]
    return node


def set_path(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``cfg`` at the dotted path, creating the dicts on the way."""
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _leaf_differences(now: Any, saved: Any, prefix: str) -> list[str]:
    if isinstance(now, dict) and isinstance(saved, dict):
        out: list[str] = []
        for key in list(saved) + [k for k in now if k not in saved]:
            out += _leaf_differences(now.get(key, _UNSET), saved.get(key, _UNSET), f"{prefix}.{key}")
        return out
    return [] if _normal(now) == _normal(saved) else [prefix]


def _normal(value: Any) -> Any:
    """Tuples and lists compare equal (a checkpoint's JSON has lists)."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def config_differences(current: dict[str, Any], saved: dict[str, Any], sections: list[str]) -> list[str]:
    """Dotted keys under ``sections`` whose value in ``current`` differs from ``saved``; keys
    named ``name`` (the model's, a feature's type) first: they explain the rest."""
    keys: list[str] = []
    for section in sections:
        keys += _leaf_differences(get_path(current, section), get_path(saved, section), section)
    return sorted(keys, key=lambda k: (not k.endswith((".name", ".type")), keys.index(k)))


def _show(value: Any) -> str:
    if value == _UNSET:
        return "unset"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return "null" if value is None else str(value)


def describe_differences(current: dict[str, Any], saved: dict[str, Any], keys: list[str],
                         limit: int = 4) -> tuple[str, str]:
    """(``key=saved`` pairs, the current values) of the first ``limit`` keys, for one line."""
    renamed = [k[: -len("name")] for k in keys if k.endswith(".name")]
    # another model.name explains every other model.* difference: show the name only
    telling = [k for k in keys if k.endswith(".name") or not any(k.startswith(r) for r in renamed)]
    shown = telling[:limit]
    more = f" (+{len(keys) - len(shown)} more)" if len(keys) > len(shown) else ""
    was = ", ".join(f"{k}={_show(get_path(saved, k))}" for k in shown) + more
    now = ", ".join(_show(get_path(current, k)) for k in shown)
    return was, now


def merge_sections(target: dict[str, Any], saved: dict[str, Any], sections: list[str]) -> dict[str, Any]:
    """``target`` with each of ``sections`` replaced by the saved one (the config actually used)."""
    for section in sections:
        value = get_path(saved, section)
        if value != _UNSET:
            set_path(target, section, value)
    return target
