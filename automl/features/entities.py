"""Which entity tables an experiment's rows are made of (the schema DFS walks).

A dataset declares its event table (one row per interaction, with a timestamp) and the parent
entities it references (key column + the attribute columns that belong to that entity). The
bundled MovieLens-100k is ratings (events) -> users, items. Other datasets: pass your own
:class:`EntitySpec` to :func:`automl.features.dfs.generate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lingjie.errors import ConfigError


@dataclass(frozen=True)
class Parent:
    name: str  # entity name, e.g. "users"
    key: str  # column in the event table and index of the entity, e.g. "user_id"
    attributes: list[str] = field(default_factory=list)  # columns that belong to the entity


@dataclass(frozen=True)
class EntitySpec:
    events: str  # event table name, e.g. "ratings"
    time_column: str  # unix seconds (int) of each event
    values: list[str]  # numeric event columns that aggregates summarise (e.g. rating)
    parents: list[Parent]


ENTITY_SPECS: dict[str, EntitySpec] = {
    "movielens-100k": EntitySpec(
        events="ratings", time_column="timestamp", values=["rating"],
        parents=[Parent("users", "user_id", ["gender", "age", "occupation", "zip_code"]),
                 Parent("items", "item_id", ["release_year"])]),
}


def entity_spec_for(dataset: str | None) -> EntitySpec:
    if dataset in ENTITY_SPECS:
        return ENTITY_SPECS[dataset]
    raise ConfigError("data.dataset", f"no entity schema for dataset {dataset!r}; known: {', '.join(ENTITY_SPECS)} "
                      "(add one to automl.features.entities.ENTITY_SPECS)")
