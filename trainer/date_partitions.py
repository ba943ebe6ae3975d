"""Date-partitioned data paths: ``${data.date}`` / ``${data.eval_date}`` in a path.

A path such as ``train_path: .../dt=${data.date}/`` reads one day's partition. OmegaConf turns
a null date into the text ``None`` (``dt=None/``), so a forgotten date would surface later as a
puzzling missing directory: :func:`check_date_templates` looks at the config *before* it is
resolved and names the key and the fix instead. Domain-neutral: any string in the config that
interpolates one of :data:`DATE_KEYS` while that key is null is refused.
"""
from __future__ import annotations

import re
from typing import Any

from lingjie.errors import ConfigError

DATE_KEYS = ("data.date", "data.eval_date")
_TEMPLATE = re.compile(r"\$\{\s*(data\.(?:date|eval_date))\s*\}")
FIXES = {
    "data.date": "name the day to train on (data.date=YYYY-MM-DD{known}), or train every day of data.dates "
                 "in order with `lingjie incremental`",
    "data.eval_date": "name the day to evaluate on (data.eval_date=YYYY-MM-DD{known}), or drop the evaluation "
                      "(data.eval_path=null)",
}


def _strings(node: Any, path: str) -> list[tuple[str, str]]:
    """(dotted key, text) of every string leaf under ``node`` (a plain, unresolved container)."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _strings(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


def check_date_templates(cfg: Any) -> None:
    """Raise a ConfigError when a config string uses ``${data.date}`` or ``${data.eval_date}``
    while that key is null. ``cfg``: the composed, *unresolved* DictConfig (``hydra`` is skipped)."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=False)
    values = {key: OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
              for key in DATE_KEYS}
    for where, text in _strings({k: v for k, v in plain.items() if k != "hydra"}, ""):
        for key in _TEMPLATE.findall(text):
            if values.get(key) is None:
                raise ConfigError(where, f"{text!r} reads a date partition, but {key} is null: "
                                  + FIXES[key].format(known=_known_days(cfg)))


def _known_days(cfg: Any) -> str:
    from omegaconf import OmegaConf

    dates = OmegaConf.select(cfg, "data.dates", default=None, throw_on_resolution_failure=False)
    if not dates:
        return ""
    shown = ", ".join(str(d) for d in list(dates)[:3]) + (", ..." if len(dates) > 3 else "")
    return f", one of data.dates: {shown}"
