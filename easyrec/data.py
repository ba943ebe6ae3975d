"""Where recommendation rows come from: the table source of a path, the feature pipeline of the
model's features, and the batch loader of one split for one rank.

Public because the recipe, stream mode and automl (feature selection) read data the same way.
"""
from __future__ import annotations

import logging
from typing import Any

from dataio.progress import progress
from dataio.sharding import shard_limit
from lingjie.errors import ConfigError
from lingjie.faults import fault_point

log = logging.getLogger("lingjie")


def make_source(spec: Any, path: str, pipeline: Any, with_labels: bool, extra_columns: list[str] | None = None,
                read_rows: int | None = None) -> Any:
    """The table source of ``path``: files of any fsspec URL (local, oss://, hdfs://, webhdfs://)
    or a MaxCompute table (odps://), reading only the columns the features need."""
    data = spec.root.data
    columns = list(dict.fromkeys(pipeline.required_columns(with_labels=with_labels) + list(extra_columns or [])))
    required = [lab.column for lab in spec.labels.values()] if with_labels else []
    rules = source_rules(spec, pipeline, with_labels)
    if str(path).startswith("kafka://"):
        raise ConfigError("data.train_path", "kafka:// is a stream: use trainer.mode=stream to train from it")
    if str(path).startswith("odps://"):
        from dataio.sources import open_source

        src = open_source(path, columns=columns, on_error=data.on_error, required_columns=required,
                          read_rows=read_rows or data.read_rows, storage_options=data.storage_options or None)
    else:
        from dataio.source import Source

        src = Source(path, format=data.format, columns=columns, on_error=data.on_error, required_columns=required,
                     csv_delimiter=data.csv.delimiter, csv_header=data.csv.header,
                     csv_column_names=data.csv.column_names, read_rows=read_rows or data.read_rows,
                     storage_options=data.storage_options or None, rules=rules)
    if hasattr(src, "check_columns"):
        src.check_columns(columns)
    return src


def source_rules(spec: Any, pipeline: Any, with_labels: bool) -> list[Any]:
    """The value rules (:mod:`dataio.checks`) of this run's numeric columns: what the model's
    raw features and labels may hold; labels of binary tasks must be 0/1 (or thresholded)."""
    from easyrec.features.rules import value_rules

    binary = {t.label for t in spec.model.tasks if t.type == "binary"}
    return value_rules(pipeline, binary, with_labels)


def make_loader(spec: Any, pipeline: Any, path: str, train: bool, with_labels: bool = True, dist: Any = None) -> Any:
    """A :class:`easyrec.loader.BatchLoader` over ``path`` for this rank (evaluation and the
    simple train loader; the recipe's train loader adds the trainer.loader knobs)."""
    from easyrec.loader import BatchLoader

    data = spec.root.data
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    read_rows = min(data.read_rows, data.eval_batch_size) if world > 1 else None
    src = make_source(spec, path, pipeline, with_labels, read_rows=read_rows)
    limit = shard_limit(data.limit_train_rows if train else data.limit_eval_rows, src.read_rows, rank, world)
    return BatchLoader(src, pipeline, data.batch_size if train else data.eval_batch_size,
                       shuffle=train and data.shuffle, seed=spec.root.seed,
                       shuffle_buffer_rows=data.shuffle_buffer_rows, with_labels=with_labels,
                       limit_rows=limit, rank=rank, world_size=world)


def used_features(spec: Any) -> dict[str, Any]:
    """Features referenced by the model's groups, plus those they share tables with."""
    names = {n for group in spec.model.feature_groups.values() for n in group}
    for n in list(names):
        share = getattr(spec.features[n], "share", None)
        if share:
            names.add(share)
    unused = [n for n in spec.features if n not in names]
    if unused:
        log.info("features not used by model %s: %s", spec.model.name, ", ".join(unused))
    return {n: f for n, f in spec.features.items() if n in names}


def make_pipeline(spec: Any) -> Any:
    """An unfitted :class:`easyrec.features.pipeline.FeaturePipeline` of the model's features."""
    from easyrec.features.pipeline import FeaturePipeline

    return FeaturePipeline(used_features(spec), spec.labels, group_by=spec.root.data.group_by)


def fit_pipeline(spec: Any, pipeline: Any) -> Any:
    """Fit ``pipeline`` on the train split (``data.fit_rows`` or the train limit); returns it.
    A progress bar counts the rows read (the fit is one silent pass over the data otherwise;
    ``trainer.progress_bar=false`` hides it)."""
    data = spec.root.data
    limit = data.fit_rows or data.limit_train_rows
    src = make_source(spec, data.train_path, pipeline, with_labels=True)
    bar = progress(None, desc="fit features", total=count_rows(src, limit), unit="row",
                   enabled=spec.root.trainer.progress_bar)
    try:
        pipeline.fit(_with_fault_point(src.iter_batches(data.read_rows, limit_rows=limit), bar))
    finally:
        bar.close()
    return pipeline


def _with_fault_point(batches: Any, bar: Any) -> Any:
    for batch in batches:
        yield batch
        bar.update(batch.num_rows)
        fault_point("feature_fit")


def count_rows(src: Any, limit: int | None) -> int | None:
    """Row count from Parquet footers / table metadata (cheap); None where there is none."""
    total = src.count_rows() if hasattr(src, "count_rows") else None
    if total is None:
        return None
    return min(total, limit) if limit else total
