"""Data input: files of any fsspec URL -> sharded, shuffled, resumable Arrow record batches.

``Source`` is the one entry point for reading training data; ``ensure_dataset`` prepares a
bundled dataset (MovieLens-100k, adult, synthetic Criteo) in the local cache and returns
its directory. (Named ``dataio`` because a top-level ``io`` package cannot be imported.)
"""
from __future__ import annotations

from dataio.datasets.cache import ensure_dataset
from dataio.source import Source

__all__ = ["Source", "ensure_dataset"]
