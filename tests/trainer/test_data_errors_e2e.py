"""User data errors through the real CLI: one clear message naming the file; skip counts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.csv as pcsv

from tests.conftest import run_cli

BASE = ["+experiment=movielens_deepfm", "data.dataset=null", "trainer.epochs=1", "trainer.progress_bar=false",
        "trainer.export.enabled=false"]


def test_missing_column_names_column_and_file(tmp_path: Path, movielens_split: tuple[Path, Path]) -> None:
    train, test = movielens_split
    proc = run_cli([*BASE, f"data.train_path={train}", f"data.eval_path={test}", "features.gender.column=sex",
                    f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert "sex" in err and str(train) in err


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    proc = run_cli([*BASE, f"data.train_path={tmp_path / 'nope.parquet'}", "data.eval_path=null",
                    f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "nope.parquet" in proc.stderr.strip().splitlines()[-1]


def _csv_with_bad_lines(path: Path, table: pa.Table) -> None:
    table = table.drop_columns(["hist_item_id"])
    pcsv.write_csv(table, path)
    lines = path.read_text().splitlines()
    lines.insert(100, "1,2,3")  # wrong field count
    assert lines[0].replace('"', "").split(",")[2] == "rating"
    lines.insert(200, '7,8,,1,"F",30,"doctor","1","Drama",1990')  # null label
    path.write_text("\n".join(lines) + "\n")


def test_bad_csv_rows_raise_with_file_and_row(tmp_path: Path, movielens_table: Callable) -> None:
    path = tmp_path / "train.csv"
    _csv_with_bad_lines(path, movielens_table(1500))
    proc = run_cli([*BASE, f"data.train_path={path}", "data.eval_path=null", "model=deepfm",
                    f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert str(path) in last and "row" in last


def test_bad_csv_rows_skipped_and_counted(tmp_path: Path, movielens_table: Callable) -> None:
    path = tmp_path / "train.csv"
    _csv_with_bad_lines(path, movielens_table(1500))
    run = tmp_path / "r"
    run_cli([*BASE, f"data.train_path={path}", "data.eval_path=null", "data.on_error=skip",
             f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["bad_rows"]["train"] == 2
