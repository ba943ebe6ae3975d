"""Feature columns: typed configs, the fitted FeaturePipeline, and the Batch it produces.

Data flow: ``FeaturePipeline(configs).fit(record_batches)`` -> saved state ->
``transform(record_batch) -> Batch`` (numpy only, backend-neutral). Importing this package
stays light (configs need only the standard library); pipeline names load on first use.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "FeaturePipeline": "easyrec.features.pipeline",
    "Batch": "easyrec.features.batch",
    "SparseValues": "easyrec.features.batch",
    "SequenceValues": "easyrec.features.batch",
    "FeatureInfo": "easyrec.features.info",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'easyrec.features' has no attribute {name!r}")
