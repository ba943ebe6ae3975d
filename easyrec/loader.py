"""Source -> FeaturePipeline -> Batch, read and transformed ahead of the train step.

A background thread reads the next record batches while the model trains on the current one
(pyarrow and numpy release the GIL for most of the work) and transforms them in groups of
``transform_batches`` (the pipeline's per-call cost is paid once per group), through a bounded
queue of ``prefetch`` groups, so memory stays bounded. With ``workers`` > 1 the transforms run
in a pool of ``worker_type`` threads or processes (processes sidestep the GIL for the Python
parts of the pipeline, at the cost of pickling each group's Arrow table there and its Batch
back); groups come back in order either way, so an epoch is the same sequence of batches
whatever the settings. Errors in the workers are re-raised in the consumer.

``stats`` accumulates, over the loader's life, the seconds spent reading and transforming (in
the workers) and waiting (the consumer blocked on an empty queue): the input side of the
critical-path report (trainer.timing).
"""
from __future__ import annotations

import time
import weakref
from concurrent.futures import Executor, Future
from typing import Any, Callable, Iterator

import pyarrow as pa

from dataio.source import Source
from easyrec.features.batch import Batch
from easyrec.features.pipeline import FeaturePipeline



class LoaderStats:
    """Seconds spent per input stage, summed over every epoch of one loader."""

    __slots__ = ("read_s", "transform_s", "wait_s", "batches", "rows")

    def __init__(self) -> None:
        self.read_s = 0.0  # source iteration: file reads, decoding, shuffling, re-batching
        self.transform_s = 0.0  # FeaturePipeline.transform (+ slicing into batches)
        self.wait_s = 0.0  # the consumer blocked for want of a batch
        self.batches = 0
        self.rows = 0

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}


# ----- process workers: the pipeline is rebuilt once per worker process from its state -----
_WORKER_PIPELINE: FeaturePipeline | None = None


def _init_worker(state: dict[str, Any]) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = FeaturePipeline.from_state_dict(state)


def _transform_in_worker(table: pa.Table, with_labels: bool) -> tuple[Batch, float]:
    t = time.perf_counter()
    assert _WORKER_PIPELINE is not None, "worker process not initialised"
    batch = _WORKER_PIPELINE.transform(table, with_labels=with_labels)
    return batch, time.perf_counter() - t


class BatchLoader:
    """Batches of one dataset for one rank; ``epoch(e, skip_batches)`` is deterministic."""

    def __init__(
        self,
        source: Source,
        pipeline: FeaturePipeline,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer_rows: int = 100_000,
        with_labels: bool = True,
        limit_rows: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 2,
        transform_batches: int = 8,
        workers: int = 1,
        worker_type: str = "thread",
        cache: str = "none",
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer_rows = shuffle_buffer_rows
        self.with_labels = with_labels
        self.limit_rows = limit_rows
        self.rank = rank
        self.world_size = world_size
        self.prefetch = max(1, prefetch)
        self.transform_batches = max(1, transform_batches)
        self.workers = max(1, workers)
        if worker_type not in ("thread", "process"):
            raise ValueError(f"worker_type must be 'thread' or 'process', got {worker_type!r}")
        self.worker_type = worker_type
        if cache not in ("none", "memory"):
            raise ValueError(f"cache must be 'none' or 'memory', got {cache!r}")
        self.cache = cache
        self._cached: Batch | None = None
        self._single: frozenset[str] | None = None
        # Engine.stager() (set by the job): each batch's ready-to-call form (e.g. the TF
        # engine's packed tensors), made in the loader's background thread, off the step's path
        self.stage: Callable[[Batch], Any] | None = None
        # Engine.row_stager (cache="memory"): the engine gathers inputs from its own copy of
        # the cached rows; batches then carry labels and the staged row indices only
        self.row_stager: Callable[[Batch, frozenset], Callable[[Any], Any] | None] | None = None
        self._by_rows: Callable[[Any], Any] | None = None
        self.stats = LoaderStats()
        self._pool: Executor | None = None
        self._finalizer: Any = None

    def record_batches(self, epoch: int, skip_batches: int = 0, shuffle: bool | None = None):
        return self.source.iter_batches(
            self.batch_size,
            shuffle=self.shuffle if shuffle is None else shuffle,
            seed=self.seed,
            epoch=epoch,
            shuffle_buffer_rows=self.shuffle_buffer_rows,
            rank=self.rank,
            world_size=self.world_size,
            skip_batches=skip_batches,
            limit_rows=self.limit_rows,
        )

    # ----- the worker pool (workers > 1, or any process worker) -----
    def _get_pool(self) -> Executor | None:
        if self.workers == 1 and self.worker_type == "thread":
            return None  # transforms run inline in the reader thread: no hand-off at all
        if self._pool is None:
            if self.worker_type == "thread":
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lingjie-transform")
            else:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # spawn, not fork: the parent has framework and loader threads running
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker, initargs=(self.pipeline.state_dict(),))
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the worker pool (if any); a later epoch starts a new one."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool, self._finalizer = None, None

    def _transform(self, table: pa.Table | pa.RecordBatch) -> Batch:
        return self.pipeline.transform(table, with_labels=self.with_labels)

    def _submit(self, pool: Executor, table: pa.Table) -> Future:
        if self.worker_type == "process":
            return pool.submit(_transform_in_worker, table, self.with_labels)

        def timed() -> tuple[Batch, float]:
            t = time.perf_counter()
            out = self._transform(table)
            return out, time.perf_counter() - t

        return pool.submit(timed)

    @staticmethod
    def _split(group: list, big: Batch) -> list[tuple[Any, Batch]]:
        """Hand out exactly the batches the source produced, as views of the group's Batch."""
        if len(group) == 1:
            return [(group[0], big)]
        out, start = [], 0
        for rb in group:
            out.append((rb, big.slice(start, start + rb.num_rows)))
            start += rb.num_rows
        return out

    def _staged(self, pairs: list[tuple[Any, Batch]]) -> list[tuple[Any, Batch]]:
        if self.stage is not None:
            for _, batch in pairs:
                batch.staged = self.stage(batch)
        return pairs

    def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[tuple["object", Batch]]:
        """Yield (record_batch, transformed Batch) pairs, prepared by background workers
        (``cache="memory"``: (None, Batch) pairs cut from the cached encoded rows)."""
        if self.cache == "memory":
            return self._cached_epoch(epoch, skip_batches)
        return self._stream_epoch(epoch, skip_batches)

    def cached(self) -> Batch:
        """Every row of this rank, encoded, in source order (one unshuffled pass, done once)."""
        if self._cached is None:
            stats = self.stats
            batches, rows = stats.batches, stats.rows
            parts = [b for _, b in self._stream_epoch(0, 0, shuffle=False)]
            stats.batches, stats.rows = batches, rows  # the fill pass is input work, not batches
            if not parts:
                raise ValueError("data.cache=memory: the training split has no rows")
            t = time.perf_counter()
            self._cached = Batch.concat(parts)
            stats.transform_s += time.perf_counter() - t
            import logging

            logging.getLogger("lingjie.loader").info(
                "data.cache=memory: %s encoded rows held in memory (%.1f MiB)", f"{self._cached.size:,}",
                self._cached.nbytes() / 2**20)
        return self._cached

    def _cached_epoch(self, epoch: int, skip_batches: int) -> Iterator[tuple[None, Batch]]:
        """Batches of the cached rows: a full permutation per epoch, seeded by (seed, epoch),
        so every epoch (and a resumed one, ``skip_batches`` in) is the same on every run.
        Cut ahead in a background thread (numpy's gathers release the GIL)."""
        import numpy as np

        from trainer.prefetch import prefetch

        rows = self.cached()
        if self._single is None:
            self._single = rows.single_id_features()
        single = self._single
        if self._by_rows is None and self.row_stager is not None:
            self._by_rows = self.row_stager(rows, single)
        by_rows = self._by_rows
        order = (np.random.default_rng([self.seed, epoch, self.rank]).permutation(rows.size)
                 if self.shuffle else None)
        stats = self.stats

        def cut() -> Iterator[tuple[None, Batch]]:
            for start in range(skip_batches * self.batch_size, rows.size, self.batch_size):
                t = time.perf_counter()
                stop = min(start + self.batch_size, rows.size)
                if by_rows is not None:  # labels here, inputs gathered by the engine
                    idx = order[start:stop] if order is not None else np.arange(start, stop, dtype=np.int64)
                    batch = rows.take(idx, inputs=False)
                    batch.staged = by_rows(idx)
                else:
                    batch = rows.take(order[start:stop], single) if order is not None else rows.slice(start, stop)
                    if self.stage is not None:
                        batch.staged = self.stage(batch)
                stats.transform_s += time.perf_counter() - t
                yield None, batch

        def waited(seconds: float) -> None:
            stats.wait_s += seconds

        for pair in prefetch(cut, self.prefetch, name="lingjie-cache", on_wait=waited):
            stats.batches += 1
            stats.rows += pair[1].size
            yield pair

    def _stream_epoch(self, epoch: int, skip_batches: int = 0,
                      shuffle: bool | None = None) -> Iterator[tuple["object", Batch]]:
        from trainer.prefetch import prefetch

        pool = self._get_pool()
        stats = self.stats

        def transformed(group: list) -> Any:
            """Transform several batches in one call (the pipeline's per-call cost is paid once);
            with a pool: (record batches, future), finished by the consumer."""
            table = group[0] if len(group) == 1 else pa.Table.from_batches(group).combine_chunks()
            if pool is not None:
                return group, self._submit(pool, table)
            t = time.perf_counter()
            pairs = self._staged(self._split(group, self._transform(table)))
            stats.transform_s += time.perf_counter() - t
            return pairs

        def groups() -> Iterator[Any]:
            group: list = []
            t = time.perf_counter()
            for rb in self.record_batches(epoch, skip_batches, shuffle):
                stats.read_s += time.perf_counter() - t
                group.append(rb)
                if len(group) >= self.transform_batches:
                    yield transformed(group)
                    group = []
                t = time.perf_counter()
            stats.read_s += time.perf_counter() - t
            if group:
                yield transformed(group)

        def waited(seconds: float) -> None:
            stats.wait_s += seconds

        # with a pool, enough groups in flight to keep every worker busy
        depth = max(self.prefetch, self.workers + 1) if pool else self.prefetch
        for item in prefetch(groups, depth, name="lingjie-loader", on_wait=waited):
            if isinstance(item, tuple):  # (record batches, future) from the pool
                t = time.perf_counter()
                group, fut = item
                big, seconds = fut.result()
                t_split = time.perf_counter()
                item = self._staged(self._split(group, big))
                stats.transform_s += seconds + time.perf_counter() - t_split
                stats.wait_s += t_split - t
            for pair in item:
                stats.batches += 1
                stats.rows += pair[1].size
                yield pair
