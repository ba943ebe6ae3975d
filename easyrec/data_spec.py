"""The ``data`` group of a recommendation experiment (``domain: rec``): files, labels, batching.

Stdlib only, like every schema: the root of a rec config is
``trainer.schema.spec.build_root(cfg, DataSpec)``; the shared groups (trainer, hardware, logger,
paths) are trainer's. ``configs/data/base.yaml`` lists every knob below with its default
(generated: ``python -m trainer.schema.defaults --write``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lingjie.schema import F


@dataclass
class LabelSpec:
    column: str = F(None, "input column holding the label")
    threshold: float | None = F(None, "label = float(column >= threshold); null: the raw value")


@dataclass
class CsvSpec:
    delimiter: str = F(",", "field separator")
    header: bool = F(True, "first line holds column names")
    column_names: list[str] | None = F(None, "names when the file has no header")


@dataclass
class DataSpec:
    dataset: str | None = F(None, "bundled dataset registry name, prepared on first use (movielens-100k, adult)")
    train_path: str | None = F(None, "training data: file, directory, glob or fsspec URL")
    eval_path: str | None = F(None, "evaluation data (the held-out split)")
    date: str | None = F(None, "the day partition to read: paths may say ${data.date}, e.g. .../dt=${data.date}/")
    eval_date: str | None = F(None, "the day partition to evaluate on: ${data.eval_date} in eval_path")
    dates: list[str] = F([], "lingjie incremental: the days to train on, in order (each warm-starts from the "
                         "previous day's run and evaluates on the next day)")
    format: Literal["auto", "parquet", "csv", "jsonl"] = F("auto", "file format; auto: by extension")
    csv: CsvSpec = F(CsvSpec(), "CSV options")
    labels: dict[str, LabelSpec] = F({}, "label name -> how to compute it from a column")
    group_by: str | None = F(None, "column grouping rows for GAUC (e.g. user_id)")
    batch_size: int = F(1024, "training batch size", ge=1)
    eval_batch_size: int = F(4096, "evaluation / prediction batch size", ge=1)
    shuffle: bool = F(True, "shuffle training data each epoch (seeded)")
    shuffle_buffer_rows: int = F(200_000, "rows held by the shuffle buffer (memory bound)", ge=1)
    read_rows: int = F(65536, "rows per read chunk (memory bound and shard unit)", ge=1)
    cache: Literal["none", "memory"] = F("none", "memory: training rows read and encoded once, then held in RAM "
                                         "(each epoch a full seeded reshuffle); for splits that fit in memory")
    fit_rows: int | None = F(None, "rows of train used to fit the feature state; null: all", ge=1)
    limit_train_rows: int | None = F(None, "use at most this many training rows (tests, smoke runs)", ge=1)
    limit_eval_rows: int | None = F(None, "use at most this many evaluation rows", ge=1)
    on_error: Literal["raise", "skip"] = F("raise", "bad rows: raise names file and row; skip counts them")
    storage_options: dict[str, Any] = F({}, "fsspec storage options")
