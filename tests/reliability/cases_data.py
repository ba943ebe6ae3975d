"""Reliability rows for bad data: nothing trains silently on it (issue 17).

Each row writes small MovieLens-shaped files under the temp dir and points the shipped
movielens_deepfm experiment at them; the message must name the file and, where the issue says
so, the row and the column.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from tests.conftest import movielens_like
from tests.reliability.case import SMALL, Case, run_dirs

TRAIN, EVAL, CSV = "{tmp}/train.parquet", "{tmp}/eval.parquet", "{tmp}/train.csv"
BASE = [*SMALL, "data.dataset=null", "trainer.export.enabled=false", f"data.eval_path={EVAL}"]


def _with(column: str, rows: dict[int, Any], dtype: Any = None) -> Callable[[pa.Table], pa.Table]:
    """An edit of the train table: ``column`` (cast to ``dtype``) with ``rows`` replaced."""
    def edit(table: pa.Table) -> pa.Table:
        values = table.column(column).to_numpy()
        values = values.astype(dtype) if dtype is not None else values.copy()
        for i, v in rows.items():
            values[i] = v
        return table.set_column(table.schema.get_field_index(column), column, pa.array(values))
    return edit


def _binary_rating(table: pa.Table) -> pa.Table:
    """Ratings already 0/1 (as a binary label column would be)."""
    return table.set_column(2, "rating", pa.array((table.column("rating").to_numpy() >= 4).astype(np.int64)))


def _files(*edits: Callable[[pa.Table], pa.Table]) -> Callable[[Path], None]:
    """Setup: train.parquet (800 rows, ``edits`` applied in order) and a clean eval.parquet."""
    def setup(tmp: Path) -> None:
        table = movielens_like(800)
        for edit in edits:
            table = edit(table)
        pq.write_table(table, tmp / "train.parquet")
        pq.write_table(movielens_like(400, seed=1), tmp / "eval.parquet")
    return setup


def _csv(edit_line: Callable[[list[str]], None]) -> Callable[[Path], None]:
    """Setup: train.csv (the list column dropped; ``edit_line`` edits its lines) and eval.parquet."""
    def setup(tmp: Path) -> None:
        _files()(tmp)
        path = tmp / "train.csv"
        pcsv.write_csv(movielens_like(800).drop_columns(["hist_item_id"]), path)
        lines = path.read_text().splitlines()
        edit_line(lines)
        path.write_text("\n".join(lines) + "\n")
    return setup


def _age_text(lines: list[str]) -> None:
    """'abc' in the age column (the 6th) of data row 42."""
    cells = lines[1 + 42].split(",")
    cells[5] = "abc"
    lines[1 + 42] = ",".join(cells)


def _ragged(lines: list[str]) -> None:
    lines[1 + 100] = "1,2,3"  # data row 100 has 3 fields


def _empty(tmp: Path) -> None:
    _files()(tmp)
    pq.write_table(movielens_like(10).slice(0, 0), tmp / "train.parquet")


def _corrupt(tmp: Path) -> None:
    _files()(tmp)
    (tmp / "train.parquet").write_bytes(b"PAR1 this is not a parquet file at all" * 10)


def _counted_bad_row(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    """The skipped 'abc' row is in metrics.json's bad_rows, not silently gone."""
    [run] = run_dirs(tmp)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["bad_rows"]["train"] == 1, metrics["bad_rows"]


def _no_run_left_trained(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    """No checkpoint or metrics.json claims a run that never read good data."""
    for run in run_dirs(tmp):
        assert not (run / "metrics.json").exists(), f"{run} has metrics.json"


LABEL_FIX = r".*data\.labels\.like\.threshold=<x>"
CASES: list[Case] = [
    Case("data-binary-label-7", [*BASE, f"data.train_path={TRAIN}", "data.labels.like.threshold=null"],
         message=r"train\.parquet at row 37: label 'like' \(column 'rating'\) must be 0 or 1, got 7" + LABEL_FIX,
         setup=_files(_binary_rating, _with("rating", {37: 7, 90: -3})), check=_no_run_left_trained,
         before="trained to the end: loss -5.09, eval AUC NaN, exit 0"),
    Case("data-binary-label-minus-3", [*BASE, f"data.train_path={TRAIN}", "data.labels.like.threshold=null"],
         message=r"train\.parquet at row 90: label 'like' \(column 'rating'\) must be 0 or 1, got -3" + LABEL_FIX,
         setup=_files(_binary_rating, _with("rating", {90: -3})), check=_no_run_left_trained,
         before="trained to the end: negative loss, exit 0"),
    Case("data-ratings-without-threshold", [*BASE, f"data.train_path={TRAIN}", "data.labels.like.threshold=null"],
         message=r"train\.parquet at row \d+: label 'like' \(column 'rating'\) must be 0 or 1, got [2-5]" + LABEL_FIX,
         setup=_files(), check=_no_run_left_trained,
         before="MovieLens ratings 1-5 as a binary label: loss -5.09, AUC NaN, exit 0"),
    Case("data-plus-inf-feature", [*BASE, f"data.train_path={TRAIN}", "features.age.boundaries=null",
                                   "+features.age.normalizer=zscore"],
         message=r"train\.parquet at row 50: raw feature 'age' \(column 'age'\) must be finite, got inf",
         setup=_files(_with("age", {50: np.inf}, np.float64)), check=_no_run_left_trained,
         before="FloatingPointError traceback advising a lower learning rate"),
    Case("data-minus-inf-feature", [*BASE, f"data.train_path={TRAIN}"],
         message=r"train\.parquet at row 7: raw feature 'release_year' \(column 'release_year'\) must be finite, "
                 r"got -inf",
         setup=_files(_with("release_year", {7: -np.inf}, np.float64)), check=_no_run_left_trained,
         before="-inf silently put in the first bucket"),
    Case("data-nan-label-not-filled", [*BASE, f"data.train_path={TRAIN}"],
         message=r"train\.parquet at row 20: label 'like' \(column 'rating'\) must not be null or NaN",
         setup=_files(_with("rating", {20: np.nan}, np.float64)), check=_no_run_left_trained,
         before="data error naming a batch row, not the file"),
    Case("data-csv-text-in-numeric", [*BASE, f"data.train_path={CSV}"],
         message=r"train\.csv at row 42: column 'age' \(\w+\) holds 'abc', not a number",
         setup=_csv(_age_text), check=_no_run_left_trained,
         before="pyarrow conversion error naming neither file nor row"),
    Case("data-csv-text-in-numeric-skip", [*BASE, f"data.train_path={CSV}", "data.on_error=skip"], code=0,
         setup=_csv(_age_text), check=_counted_bad_row,
         before="aborted even with data.on_error=skip"),
    Case("data-csv-ragged-row", [*BASE, f"data.train_path={CSV}"],
         message=r"train\.csv at row 100: expected \d+ fields, got 3",
         setup=_csv(_ragged), check=_no_run_left_trained,
         before="one line (same)"),
    Case("data-empty-parquet", [*BASE, f"data.train_path={TRAIN}"],
         message=r"data error in \S*train\.parquet: .*empty", setup=_empty, check=_no_run_left_trained,
         before="one line (same)"),
    Case("data-corrupt-parquet", [*BASE, f"data.train_path={TRAIN}"],
         message=r"data error in \S*train\.parquet: not a readable parquet file", setup=_corrupt, check=_no_run_left_trained,
         before="one line (same)"),
    Case("data-missing-column", [*BASE, f"data.train_path={TRAIN}"],
         message=r"data error in \S*train\.parquet: missing column 'age'",
         setup=_files(lambda t: t.drop_columns(["age"])), check=_no_run_left_trained,
         before="one line (same)"),
    Case("data-missing-train-file", [*BASE, "data.train_path={tmp}/nope.parquet"],
         message=r"nope\.parquet: no such file", setup=_files(), check=_no_run_left_trained,
         before="one line (same)"),
]
