"""Source -> FeaturePipeline -> Batch, read and transformed ahead of the train step.

A background thread reads and transforms the next batches while the model trains on the
current one (pyarrow and numpy release the GIL for most of the work), through a bounded queue
so memory stays bounded. Errors in the thread are re-raised in the consumer.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

import pyarrow as pa

from dataio.source import Source
from easyrec.features.batch import Batch
from easyrec.features.pipeline import FeaturePipeline

_END = object()


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
        prefetch: int = 4,
        transform_batches: int = 8,
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
        self.prefetch = prefetch
        self.transform_batches = max(1, transform_batches)

    def record_batches(self, epoch: int, skip_batches: int = 0):
        return self.source.iter_batches(
            self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            shuffle_buffer_rows=self.shuffle_buffer_rows,
            rank=self.rank,
            world_size=self.world_size,
            skip_batches=skip_batches,
            limit_rows=self.limit_rows,
        )

    def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[tuple["object", Batch]]:
        """Yield (record_batch, transformed Batch) pairs, prepared by a background thread."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def flush(group: list) -> bool:
            """Transform several batches in one call (the pipeline's per-call cost is paid once),
            then hand out exactly the batches the source produced."""
            if len(group) == 1:
                return put((group[0], self.pipeline.transform(group[0], with_labels=self.with_labels)))
            table = pa.Table.from_batches(group).combine_chunks()
            big = self.pipeline.transform(table, with_labels=self.with_labels)
            start = 0
            for rb in group:
                if not put((rb, big.slice(start, start + rb.num_rows))):
                    return False
                start += rb.num_rows
            return True

        def produce() -> None:
            try:
                group: list = []
                for rb in self.record_batches(epoch, skip_batches):
                    group.append(rb)
                    if len(group) >= self.transform_batches:
                        if not flush(group):
                            return
                        group = []
                if group and not flush(group):
                    return
                q.put(_END)
            except BaseException as exc:  # surfaced in the consumer
                q.put(exc)

        thread = threading.Thread(target=produce, name="lingjie-loader", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)
