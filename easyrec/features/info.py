"""What a model needs to know about each fitted feature (no data, no framework imports)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class FeatureInfo:
    """Shape facts of one fitted feature, produced by ``FeaturePipeline.feature_infos()``.

    kind: ``dense`` -> float input of width ``dim``; ``sparse`` -> pooled bag of ids looked up
    in table ``embedding_name`` of ``num_embeddings`` rows and width ``dim``; ``sequence`` ->
    padded ids of length ``max_len`` in table ``embedding_name``. Features sharing an
    ``embedding_name`` share one table (same ``dim`` and ``num_embeddings``, guaranteed by
    the pipeline). ``weighted``: the batch carries ``name.weights``. ``pooling``: sum | mean.
    ``single``: a sparse feature whose every row holds exactly one id (id, bucketised raw and
    combo features), so ``offsets`` is ``arange(B + 1)``: models may gather [B, dim] directly
    instead of pooling bags (False promises nothing). ``dynamic``: the table's
    ``easyrec.dynamic.config.DynamicConfig`` when it is a dynamic table (values are then raw
    64-bit keys and ``num_embeddings`` is 0), else None.
    """

    name: str
    kind: Literal["dense", "sparse", "sequence"]
    dim: int
    num_embeddings: int = 0
    embedding_name: str = ""
    max_len: int = 0
    weighted: bool = False
    pooling: str = "sum"
    single: bool = False
    dynamic: Any = field(default=None, compare=False, hash=False)
