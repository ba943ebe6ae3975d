"""The config snippet that trains on the generated columns (a Hydra `_global_` package).

It lives at ``OUT/automl/features_generated.yaml`` so that Hydra finds it as option
``features_generated`` of group ``automl`` once ``OUT`` is on the search path:

    python -m trainer +experiment=NAME 'hydra.searchpath=[file://OUT]' +automl=features_generated
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COUNT_LIKE = ("_count_", "_sum_", "_num_unique_")


def raw_entry(column: str, encoding: str, embedding_dim: int) -> dict[str, Any]:
    """A generated aggregate as a feature: quantile-bucketised (an embedded id, so FM models
    cross it) or a dense value (log1p for counts and sums, zscore otherwise)."""
    if encoding == "bucket":
        # empty history (NaN: mean/std of nothing) gets its own lowest bucket
        return {"type": "raw", "column": column, "num_quantiles": 10, "fill_null": -1.0,
                "embedding_dim": int(embedding_dim)}
    count_like = column.endswith("_count_ratings") or any(k in column + "_" for k in COUNT_LIKE)
    return {"type": "raw", "column": column, "normalizer": "log1p" if count_like else "zscore",
            "fill_null": 0.0 if count_like else None}


def group_dim(cfg: dict[str, Any], group: list[str]) -> int:
    """Embedding width of a group's embedded features (FM models need one width)."""
    for name in group:
        f = cfg["features"].get(name, {})
        if f.get("type") in ("id", "tag", "combo") or f.get("boundaries") or f.get("num_quantiles"):
            return int(f.get("embedding_dim", 16))
    return 16


def snippet_path(out: Path, name: str) -> Path:
    return out / "automl" / f"{name}.yaml"


def train_command(cfg_overrides: list[str], out: Path, name: str) -> str:
    args = " ".join(_quote(o) for o in cfg_overrides)
    return (f"python -m trainer {args} 'hydra.searchpath=[file://{out.resolve()}]' +automl={name}").replace("  ", " ")


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " []{}*?$") else arg


def write_snippet(out: Path, name: str, body: dict[str, Any], header: str) -> Path:
    path = snippet_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# @package _global_\n" + "".join(f"# {line}\n" for line in header.splitlines())
    text += yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120)
    path.write_text(text)
    return path
