"""Which embedding tables exist and how they fuse: one plan for every backend.

Framework-free so the torch and tf.keras embedding collections build the same tables from the
same FeatureInfos: tables are keyed by ``embedding_name`` (shared tables stored once, their
shapes must agree), and all tables of one width are fused into one lookup.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from easyrec.features.info import FeatureInfo
from lingjie.errors import ConfigError


def table_of(info: FeatureInfo) -> str:
    """Name of the table a feature reads: its ``embedding_name``, else its own name."""
    return info.embedding_name or info.name


@dataclass
class WidthGroup:
    """The tables of one width (fused into one lookup) and the features reading them."""

    width: int
    tables: list[tuple[str, int]] = field(default_factory=list)  # (table name, rows), in order
    sparse: list[FeatureInfo] = field(default_factory=list)
    sequence: list[FeatureInfo] = field(default_factory=list)


def plan_tables(features: dict[str, FeatureInfo], names: list[str], dim: int = 0) -> list[WidthGroup]:
    """Width groups (sorted by width) for the sparse/sequence features ``names``.

    ``dim`` > 0 overrides every table's width (the wide / first-order tables). Features sharing
    a table with a different shape are one ConfigError naming both.
    """
    tables: dict[str, tuple[int, int, str]] = {}  # table -> (rows, width, first feature)
    groups: dict[int, WidthGroup] = {}
    for n in names:
        info = features[n]
        if info.kind not in ("sparse", "sequence"):
            raise ValueError(f"feature '{n}' is {info.kind}; only sparse/sequence embed")
        width = dim if dim > 0 else int(info.dim)
        t = table_of(info)
        if t in tables:
            rows, w, first = tables[t]
            if rows != info.num_embeddings or w != width:
                raise ConfigError(
                    f"features.{n}.embedding_name",
                    f"'{n}' shares table '{t}' with '{first}' but has {info.num_embeddings}"
                    f" rows x {width} (the table has {rows} x {w})")
        else:
            tables[t] = (int(info.num_embeddings), width, n)
            groups.setdefault(width, WidthGroup(width)).tables.append((t, int(info.num_embeddings)))
        group = groups[tables[t][1]]
        (group.sparse if info.kind == "sparse" else group.sequence).append(info)
    return [groups[w] for w in sorted(groups)]
