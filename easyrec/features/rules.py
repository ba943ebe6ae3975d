"""What the numeric input columns of a feature pipeline may hold, as source value rules.

A model trains on anything numpy hands it: a 7 in a binary label gives a negative BCE loss and
a NaN AUC, an infinity in a z-scored feature ends in a NaN loss many steps later. These rules
let the source reject such rows where they are read, naming the file and row, the same way for
feature fitting, training, evaluation and prediction (``data.on_error``: raise or skip).
"""
from __future__ import annotations

from collections.abc import Collection

from dataio.checks import ColumnRule
from easyrec.features.labels import label_column
from easyrec.features.raw_feature import RawFeature


def value_rules(pipeline: object, binary_labels: Collection[str], with_labels: bool = True) -> list[ColumnRule]:
    """Rules for ``pipeline``'s raw features (no infinity; null/NaN is filled by ``fill_null``)
    and, ``with_labels``, its labels: no null/NaN; finite unless a threshold binarises them;
    0 or 1 for a label in ``binary_labels`` (a binary task's) without a threshold."""
    rules = [ColumnRule(f.column, f"raw feature '{f.name}'", allow_missing=True,
                        hint="remove or clip infinite values in the data")
             for f in pipeline.features.values() if isinstance(f, RawFeature)]
    if not with_labels:
        return rules
    for name, cfg in pipeline.label_configs.items():
        column = label_column(name, cfg)
        what = f"label '{name}'"
        if cfg.threshold is not None:  # binarised by column >= threshold: any number will do
            rules.append(ColumnRule(column, what, allow_inf=True))
        elif name in binary_labels:
            rules.append(ColumnRule(
                column, what, binary=True,
                hint=f"a binary task needs 0/1 labels: set data.labels.{name}.threshold=<x> "
                     f"to binarise it (1 where {column} >= x)"))
        else:
            rules.append(ColumnRule(column, what))
    return rules
