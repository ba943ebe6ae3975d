"""Which rows a (rank, worker) reads: fixed-size chunks dealt round-robin over shards.

Every file is cut into chunks of ``read_rows`` good records (the last chunk of a file may be
shorter); chunks are numbered across files in the epoch's file order, and chunk ``k`` goes
to shard ``k % num_shards`` where shard ``rank * num_workers + worker``. Every shard computes
the same numbering, so shards are disjoint and together cover the data, with no coordination.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import pyarrow as pa

from dataio.readers.base import RecordStream
from lingjie.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """One reader's slice of the chunk sequence."""

    index: int
    count: int

    @classmethod
    def of(cls, rank: int, world_size: int, worker: int, num_workers: int) -> "Shard":
        """The shard of ``worker`` (of ``num_workers``) on ``rank`` (of ``world_size``)."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError("rank", f"need 0 <= rank < world_size, got rank={rank}, "
                                      f"world_size={world_size}")
        if num_workers < 1 or not 0 <= worker < num_workers:
            raise ConfigError("worker", f"need 0 <= worker < num_workers, got worker={worker}, "
                                        f"num_workers={num_workers}")
        return cls(index=rank * num_workers + worker, count=world_size * num_workers)

    def owns(self, chunk: int) -> bool:
        """Whether global chunk number ``chunk`` belongs to this shard."""
        return chunk % self.count == self.index

    def owns_any(self, first: int, last: int) -> bool:
        """Whether any chunk in ``[first, last]`` belongs to this shard."""
        if last - first + 1 >= self.count:
            return True
        return any(self.owns(k) for k in range(first, last + 1))


def _joined(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    return parts[0] if len(parts) == 1 else pa.concat_batches(parts)  # no copy when aligned


def owned_chunks(records: RecordStream, read_rows: int, owns: Callable[[int], bool],
                 ) -> Generator[tuple[int, pa.RecordBatch], None, int]:
    """Cut one file's ``(offset, batch)`` stream into chunks, yield ``(chunk_no, batch)`` owned.

    Chunk numbers are local to the file. Returns the file's good-record count, from which
    the caller knows how many chunk numbers the file used up.
    """
    parts: list[pa.RecordBatch] = []
    current = -1
    try:
        while True:
            try:
                offset, batch = next(records)
            except StopIteration as stop:
                total = int(stop.value or 0)
                break
            pos, stop_at = offset, offset + batch.num_rows
            while pos < stop_at:  # one step per chunk boundary, not per row
                chunk = pos // read_rows
                chunk_end = min((chunk + 1) * read_rows, stop_at)
                if chunk != current:
                    if parts:
                        yield current, _joined(parts)
                        parts = []
                    current = chunk
                if owns(chunk):
                    parts.append(batch.slice(pos - offset, chunk_end - pos))
                    if chunk_end == (chunk + 1) * read_rows:
                        yield chunk, _joined(parts)
                        parts = []
                pos = chunk_end
        if parts:
            yield current, _joined(parts)
        return total
    finally:
        records.close()


def shard_limit(limit: int | None, chunk_rows: int, rank: int, world: int) -> int | None:
    """This rank's part of a global row limit: the rows of the first ``limit`` rows that lie in
    the chunks it owns (chunk k belongs to rank k % world), so the ranks together read exactly
    the rows one process would (exact for one file; the chunking restarts per file)."""
    if not limit or world == 1:
        return limit
    full, rest = divmod(limit, chunk_rows)
    owned_full = len(range(rank, full, world))
    return owned_full * chunk_rows + (rest if full % world == rank else 0)
