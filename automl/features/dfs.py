"""Deep Feature Synthesis with cutoff times: aggregates of each row's strictly earlier history.

featuretools does the synthesis and the computation. The event table (train + test rows, in
that order) becomes the ``events`` dataframe with its parents (users, items) as entities;
DFS stacks aggregations (count, mean, std, sum, max, num_unique) over the parents' events and
brings them back to the event row (``users.MEAN(ratings.rating)``: the user's mean rating).

Leakage: featuretools' ``cutoff_time`` is *inclusive* (it keeps data whose time index is
<= the cutoff). Each row's cutoff is therefore its timestamp minus one nanosecond (datetimes
have ns resolution), so an aggregate sees only events strictly before the row's own time:
never the row itself and never another event of the same second. With ``approximate``
(e.g. "1h"), featuretools floors each cutoff to the window start, so aggregates use events
up to that earlier time — staler, still strictly before the row.

Test rows are computed like train rows, over train + test events before their own timestamp:
earlier test events are information an online system has at that moment (the same rule as
the dataset's ``hist_item_id``), so no future information enters.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from automl.features.entities import EntitySpec
from dataio.progress import progress

log = logging.getLogger("lingjie.automl")

DEFAULT_PRIMITIVES = ["count", "mean", "std", "sum", "max", "num_unique"]
EVENT_INDEX = "_event_id"
EVENT_TIME = "_event_time"
INSTANCES = "_rows"
INSTANCE_INDEX = "_row_id"


@dataclass
class DFSResult:
    columns: pd.DataFrame  # one row per requested instance (same order), one column per feature
    definitions: dict[str, str]  # column name -> featuretools feature name
    seconds: float


def column_name(feature_name: str) -> str:
    """``users.MEAN(ratings.rating)`` -> ``ft_users_mean_ratings_rating`` (no dots: a feature name)."""
    return "ft_" + re.sub(r"[^0-9a-z]+", "_", feature_name.lower()).strip("_")


def build_entityset(events: pd.DataFrame, spec: EntitySpec, instances: np.ndarray, cutoffs: pd.DatetimeIndex):
    """The featuretools EntitySet: ``events`` (all rows), the ``instances`` to compute, parents."""
    import featuretools as ft

    parent_keys = [p.key for p in spec.parents]
    ev = pd.DataFrame({EVENT_INDEX: np.arange(len(events), dtype=np.int64)})
    for key in parent_keys:
        ev[key] = events[key].to_numpy()
    for v in spec.values:
        ev[v] = pd.to_numeric(events[v]).astype("float64").to_numpy()
    ev[EVENT_TIME] = pd.to_datetime(events[spec.time_column].to_numpy(), unit="s")
    es = ft.EntitySet("lingjie")
    es.add_dataframe(dataframe_name=spec.events, dataframe=ev, index=EVENT_INDEX, time_index=EVENT_TIME)
    # the rows to compute: known at their cutoff (featuretools drops instances not yet seen at
    # the cutoff, which would lose their user/item keys); they carry no event values
    inst = pd.DataFrame({INSTANCE_INDEX: np.arange(len(instances), dtype=np.int64)})
    for key in parent_keys:
        inst[key] = events[key].to_numpy()[instances]
    inst[EVENT_TIME] = cutoffs
    es.add_dataframe(dataframe_name=INSTANCES, dataframe=inst, index=INSTANCE_INDEX, time_index=EVENT_TIME)
    for p in spec.parents:
        table = events[[p.key, *p.attributes]].drop_duplicates(p.key).reset_index(drop=True)
        es.add_dataframe(dataframe_name=p.name, dataframe=table, index=p.key)
        es.add_relationship(p.name, p.key, spec.events, p.key)
        es.add_relationship(p.name, p.key, INSTANCES, p.key)
    return es


def generate(events: pd.DataFrame, spec: EntitySpec, instances: np.ndarray, max_depth: int = 2,
             max_features: int = 40, primitives: list[str] | None = None,
             approximate: str | None = None, show_progress: bool = True) -> DFSResult:
    """Generated aggregate features of the event rows at positions ``instances``.

    ``events`` holds every event (history for all rows); only features built from an
    aggregation are kept (parents' plain attributes are already columns), at most
    ``max_features`` of them, in DFS order. ``show_progress``: a bar (percent done) over the
    feature-matrix computation, the minutes-long part (``trainer.progress_bar``).
    """
    import featuretools as ft

    t0 = time.perf_counter()
    instances = np.asarray(instances, dtype=np.int64)
    times = pd.to_datetime(events[spec.time_column].to_numpy()[instances], unit="s")
    cutoffs = times - pd.Timedelta(1, "ns")  # inclusive cutoff -> strictly before the row's own time
    es = build_entityset(events, spec, instances, cutoffs)
    defs = ft.dfs(entityset=es, target_dataframe_name=INSTANCES, agg_primitives=primitives or DEFAULT_PRIMITIVES,
                  trans_primitives=[], max_depth=max_depth, features_only=True)
    # aggregates of the parents' events only (not of the instance rows, not plain attributes)
    keep = [f for f in defs if f.get_depth() >= 2 and f"({spec.events}" in f.get_name()][:max_features]
    cutoff = pd.DataFrame({INSTANCE_INDEX: np.arange(len(instances)), "time": cutoffs})
    bar = progress(None, desc="DFS feature matrix", total=100, unit="%", enabled=show_progress)
    try:  # featuretools reports (increment %, done %, seconds) through progress_callback
        matrix = ft.calculate_feature_matrix(keep, es, cutoff_time=cutoff, n_jobs=1, approximate=approximate,
                                             verbose=False, progress_callback=lambda inc, *_: bar.update(inc))
    finally:
        bar.close()
    matrix = matrix.reindex(np.arange(len(instances)))  # featuretools sorts by cutoff time; restore our order
    definitions = {column_name(f.get_name()): f.get_name() for f in keep}
    out = pd.DataFrame({column_name(f.get_name()): pd.to_numeric(matrix[f.get_name()], errors="coerce")
                        .astype("float64").to_numpy() for f in keep})
    seconds = time.perf_counter() - t0
    log.info("DFS: %d features for %d rows in %.1fs (approximate=%s)", len(keep), len(instances), seconds, approximate)
    return DFSResult(out, definitions, seconds)
