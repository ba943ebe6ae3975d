"""The search space of a sweep: `hydra.sweeper.params` (and sweep overrides on the command line)
-> Optuna distributions, and sampled values -> Hydra override strings.

Two spellings, mixable:
  dict:   features.user_id.embedding_dim: {type: categorical, choices: [8, 16, 32]}
          trainer.optimizer.sparse.lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
          data.batch_size: {type: int, low: 256, high: 2048, step: 256}
  Hydra:  choice(8,16,32) | range(1,5) (stop excluded) | interval(0.0,0.5) | tag(log, interval(1e-4,1e-1))
A plain list is a categorical. Non-scalar choices (lists) become override strings such as [256,128].
`paths: [a.b, c.d]` in the dict spelling ties several config paths to one parameter (e.g. one
embedding_dim for every feature of DeepFM's FM group); the parameter's name is then free.
"""
from __future__ import annotations

from typing import Any

SCALAR = (str, int, float, bool, type(None))


def override_value(v: Any) -> str:
    """A Python value as a Hydra override value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(float(f"{v:.12g}"))
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{override_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def _choice(v: Any) -> Any:
    return v if isinstance(v, SCALAR) else override_value(v)


def distribution(key: str, spec: Any) -> Any:
    """The Optuna distribution of one entry of hydra.sweeper.params."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(spec, (list, tuple)):
        return CategoricalDistribution([_choice(c) for c in spec])
    if isinstance(spec, dict):
        kind = spec.get("type", "categorical" if "choices" in spec else None)
        try:
            if kind == "categorical":
                return CategoricalDistribution([_choice(c) for c in spec["choices"]])
            if kind == "int":
                return IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False)),
                                       step=int(spec.get("step") or 1))
            if kind == "float":
                return FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)),
                                         step=spec.get("step"))
        except KeyError as exc:
            raise ValueError(f"hydra.sweeper.params.{key}: missing {exc.args[0]!r}") from None
        raise ValueError(f"hydra.sweeper.params.{key}: type must be categorical, int or float, got {kind!r}")
    return _from_override(key, str(spec))


def _from_override(key: str, value: str) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    override = OverridesParser.create().parse_override(f"{key}={value}")
    if not override.is_sweep_override():
        raise ValueError(f"hydra.sweeper.params.{key}: '{value}' is not a search space; use choice(...), "
                         "range(...), interval(...), tag(log, interval(...)) or {type: ..., low: ..., high: ...}")
    sweep = override.value()
    log = "log" in (getattr(sweep, "tags", None) or set())
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution([_choice(c) for c in sweep.list])
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values):
            step = int(sweep.step or 1)
            return IntDistribution(values[0], values[-1], log=log, step=1 if log else step)
        return CategoricalDistribution(values)
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise ValueError(f"hydra.sweeper.params.{key}: unsupported sweep '{value}'")


def split_arguments(arguments: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Command-line overrides -> (fixed overrides, search space from sweep overrides such as x=choice(1,2))."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    fixed: list[str] = []
    space: dict[str, Any] = {}
    for arg, override in zip(arguments, parser.parse_overrides(arguments)):
        if override.is_sweep_override():
            key = override.get_key_element()
            space[key] = _from_override(key, arg.split("=", 1)[1])
        else:
            fixed.append(arg)
    return fixed, space


def targets(params: dict[str, Any]) -> dict[str, list[str]]:
    """Parameter name -> the config paths it sets (itself unless `paths:` is given)."""
    out = {}
    for k, spec in params.items():
        paths = spec.get("paths") if isinstance(spec, dict) else None
        out[k] = [str(p) for p in paths] if paths else [k]
    return out
