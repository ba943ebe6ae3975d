"""dataio.Source: batching, sharding, shuffling, resume, limits and bounded memory."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dataio.files import expand_paths
from dataio.readers import ReadOptions, always_wanted, reader_for
from dataio.sharding import owned_chunks
from dataio.source import Source


def ids_of(batches) -> np.ndarray:
    if not batches:
        return np.array([], dtype=np.int64)
    return np.concatenate([b.column("id").to_numpy() for b in batches])


@pytest.fixture
def mixed(tmp_path):
    """Five files, three formats, uneven sizes (one smaller than a chunk): ids 0..1036."""
    sizes = [300, 7, 250, 280, 200]
    start = 0
    for i, n in enumerate(sizes):
        t = pa.table({"id": np.arange(start, start + n), "v": np.arange(n) % 7 * 1.0})
        if i % 3 == 0:
            pq.write_table(t, tmp_path / f"f{i}.parquet", row_group_size=40)
        elif i % 3 == 1:
            pacsv.write_csv(t, tmp_path / f"f{i}.csv")
        else:
            (tmp_path / f"f{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in t.to_pylist()))
        start += n
    return str(tmp_path), start


def test_batches_have_exact_size_across_chunks_and_files(mixed):
    path, total = mixed
    src = Source(path, read_rows=33)
    batches = list(src.iter_batches(64))
    assert [b.num_rows for b in batches] == [64] * (total // 64) + [total % 64]
    assert np.array_equal(np.sort(ids_of(batches)), np.arange(total))
    assert src.stats == {"rows_read": total, "bad_rows": 0, "bad_rows_by_file": {},
                         "empty_files": 0, "files_read": 5}


@pytest.mark.parametrize("world_size,num_workers", [(1, 3), (2, 2), (3, 1), (4, 3)])
def test_shards_are_disjoint_and_cover_everything(mixed, world_size, num_workers):
    path, total = mixed
    src = Source(path, read_rows=25)
    seen = []
    for rank in range(world_size):
        for worker in range(num_workers):
            ids = ids_of(list(src.iter_batches(16, rank=rank, world_size=world_size,
                                               worker=worker, num_workers=num_workers)))
            seen.append(ids)
    union = np.concatenate(seen)
    assert len(union) == total and np.array_equal(np.sort(union), np.arange(total))


def test_sharding_follows_the_global_chunk_rule(tmp_path):
    # file a: 100 rows -> chunks 0..3 (30,30,30,10); file b: 50 rows -> chunks 4,5 (30,20)
    pq.write_table(pa.table({"id": np.arange(100)}), tmp_path / "a.parquet", row_group_size=7)
    pq.write_table(pa.table({"id": np.arange(100, 150)}), tmp_path / "b.parquet")
    src = Source(str(tmp_path), read_rows=30)
    shard1 = ids_of(list(src.iter_batches(1000, rank=1, world_size=2)))
    expected = np.concatenate([np.arange(30, 60), np.arange(90, 100), np.arange(130, 150)])
    assert np.array_equal(shard1, expected)


def test_shuffle_is_deterministic_per_seed_and_epoch(mixed):
    path, total = mixed
    src = Source(path, read_rows=50)

    def order(**kw):
        return ids_of(list(src.iter_batches(32, shuffle=True, shuffle_buffer_rows=200, **kw)))

    first = order(seed=3, epoch=0)
    assert np.array_equal(first, order(seed=3, epoch=0))
    assert np.array_equal(np.sort(first), np.arange(total))
    assert not np.array_equal(first, np.arange(total))
    assert not np.array_equal(first, order(seed=3, epoch=1))
    assert not np.array_equal(first, order(seed=4, epoch=0))
    # rows travel: the first 200 rows out are not just the first file's rows in a new order
    assert len(np.intersect1d(first[:200], np.arange(300))) < 200


def test_shuffled_shards_are_disjoint_and_cover_everything(mixed):
    path, total = mixed
    src = Source(path, read_rows=25)
    for epoch in range(2):
        parts = [ids_of(list(src.iter_batches(16, shuffle=True, epoch=epoch, rank=r, world_size=2,
                                              worker=w, num_workers=2, shuffle_buffer_rows=64)))
                 for r in range(2) for w in range(2)]
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(total))


def test_shuffle_also_permutes_file_order(tmp_path):
    for i in range(6):
        pq.write_table(pa.table({"id": np.arange(10 * i, 10 * i + 10)}), tmp_path / f"{i}.parquet")
    src = Source(str(tmp_path))
    firsts = {int(ids_of(list(src.iter_batches(10, shuffle=True, epoch=e,
                                                 shuffle_buffer_rows=1)))[0] // 10)
              for e in range(8)}
    assert len(firsts) > 1  # a buffer of 1 row keeps file order, so this is the file shuffle


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("skip", [0, 1, 5, 16, 17, 40])
def test_skip_batches_resumes_exactly(mixed, shuffle, skip):
    path, _ = mixed
    src = Source(path, read_rows=40)
    kw = dict(shuffle=shuffle, seed=7, epoch=2, shuffle_buffer_rows=150, rank=1, world_size=2,
              limit_rows=None if skip != 5 else 333)
    full = list(src.iter_batches(31, **kw))
    resumed = list(src.iter_batches(31, skip_batches=skip, **kw))
    assert len(resumed) == max(len(full) - skip, 0)
    for a, b in zip(full[skip:], resumed):
        assert a.equals(b)


def test_limit_rows_caps_the_stream_and_stops_reading(mixed):
    path, total = mixed
    src = Source(path, read_rows=20)
    batches = list(src.iter_batches(30, limit_rows=95))
    assert [b.num_rows for b in batches] == [30, 30, 30, 5]
    assert np.array_equal(ids_of(batches), np.arange(95))
    assert src.stats["rows_read"] <= 100  # stopped after the chunk that reached the limit
    assert list(src.iter_batches(30, limit_rows=0)) == []
    assert sum(b.num_rows for b in src.iter_batches(30, limit_rows=10 ** 9)) == total


def test_reader_chunks_are_bounded_by_read_rows(tmp_path):
    """Generator-level check: whatever the file size, a chunk never exceeds read_rows."""
    n = 50_000
    t = pa.table({"id": np.arange(n)})
    pacsv.write_csv(t, tmp_path / "a.csv")
    pq.write_table(t, tmp_path / "a.parquet", row_group_size=8192)
    (tmp_path / "a.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(n)))
    for file in expand_paths(str(tmp_path)):
        opts = ReadOptions(read_rows=777, block_bytes=1 << 14)
        records = reader_for(file.format).read(file, opts, always_wanted, lambda *a: None)
        sizes = [b.num_rows for _, b in owned_chunks(records, 777, lambda k: True)]
        assert max(sizes) <= 777 and sum(sizes) == n, file.format
        assert len(sizes) == -(-n // 777)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_large_file_streams_in_bounded_memory(tmp_path, fmt):
    """Arrow memory held while streaming stays far below the decoded size of the file."""
    n = 400_000
    rng = np.random.default_rng(0)
    t = pa.table({"id": np.arange(n), "x": rng.random(n), "y": rng.integers(0, 10 ** 9, n)})
    path = tmp_path / f"big.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path, row_group_size=10_000)
    elif fmt == "csv":
        pacsv.write_csv(t, path)
    else:
        import pyarrow.compute as pc

        lines = pc.binary_join_element_wise(
            '{"id": ', pc.cast(t["id"], pa.string()), ', "x": ', pc.cast(t["x"], pa.string()),
            ', "y": ', pc.cast(t["y"], pa.string()), "}\n", "").combine_chunks()
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[: len(lines) + 1]
        path.write_bytes(lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]])  # joined text
    decoded = t.nbytes
    src = Source(str(path), read_rows=2000, read_block_bytes=1 << 16)
    base = pa.total_allocated_bytes()
    peak = 0
    rows = 0
    for batch in src.iter_batches(1000, shuffle=True, shuffle_buffer_rows=5000):
        peak = max(peak, pa.total_allocated_bytes() - base)
        rows += batch.num_rows
        del batch
    assert rows == n
    assert peak < decoded / 8, (peak, decoded)
