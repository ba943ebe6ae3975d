"""One entry point for every data path: files, MaxCompute tables and Kafka topics.

    open_source("s3://..., oss://b/x/*.parquet, hdfs://nn:9870/d/, /local/dir")  -> Source
    open_source("odps://project/tables/table/pt=2024*")                            -> OdpsSource
    open_source("kafka://broker:9092/topic?group=g&offset=earliest")               -> KafkaSource

``Source`` and ``OdpsSource`` are bounded tables: ``iter_batches(batch_size, shuffle=..., rank=...,
world_size=..., skip_batches=...)`` yields record batches. ``KafkaSource`` is an unbounded
stream: ``iter_batches(batch_size, max_wait_s)`` yields ``(batch, offsets)``; see
:mod:`dataio.kafka_source` for its resume contract. :func:`is_stream` tells them apart.
"""
from __future__ import annotations

from typing import Any

from dataio.filesystems import scheme_of
from lingjie.errors import ConfigError


def is_stream(path: str | list[str]) -> bool:
    """Whether ``path`` is an unbounded stream (``kafka://``) rather than a table."""
    return isinstance(path, str) and scheme_of(path) == "kafka"


def open_source(path: str | list[str], **kwargs: Any):
    """The source for ``path``: :class:`~dataio.source.Source` for files (any fsspec URL,
    ``oss://``, ``hdfs://``, ``webhdfs://``), :class:`~dataio.odps.OdpsSource` for
    ``odps://`` and :class:`~dataio.kafka_source.KafkaSource` for ``kafka://``.

    ``kwargs`` go to that class. ``storage_options`` is accepted by all three: it becomes the
    file systems' options, the ODPS reader's ``options`` (e.g. ``local_root``, ``endpoint``)
    and Kafka's ``consumer_options``.
    """
    paths = [path] if isinstance(path, str) else list(path)
    schemes = {scheme_of(p) for p in paths if isinstance(p, str)}
    special = schemes & {"odps", "kafka"}
    if special and len(paths) > 1:
        raise ConfigError("path", f"{sorted(special)[0]}:// paths cannot be mixed with others or "
                                  "listed; give one URL (several topics: kafka://host/t1,t2)")
    if "odps" in schemes:
        from dataio.odps import OdpsSource

        kwargs = dict(kwargs)
        kwargs.setdefault("options", kwargs.pop("storage_options", None))
        return OdpsSource(paths[0], **kwargs)
    if "kafka" in schemes:
        from dataio.kafka_source import KafkaSource

        kwargs = dict(kwargs)
        kwargs.setdefault("consumer_options", kwargs.pop("storage_options", None))
        return KafkaSource(paths[0], **kwargs)
    from dataio.source import Source

    return Source(path, **kwargs)
