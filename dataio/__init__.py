"""Data input: files of any fsspec URL -> sharded, shuffled, resumable Arrow record batches.

``Source`` reads files of any fsspec URL (local, ``oss://``, ``hdfs://``, ``webhdfs://``);
``open_source`` also dispatches ``odps://`` tables (``OdpsSource``) and ``kafka://`` streams
(``KafkaSource``); ``ensure_dataset`` prepares a
bundled dataset (MovieLens-100k, adult, synthetic Criteo) in the local cache and returns
its directory. (Named ``dataio`` because a top-level ``io`` package cannot be imported.)
"""
from __future__ import annotations

from dataio.datasets.cache import ensure_dataset
from dataio.source import Source
from dataio.sources import is_stream, open_source

__all__ = ["Source", "ensure_dataset", "is_stream", "open_source"]
