"""Dynamic micro-batching: concurrent requests coalesced into one forward pass.

Why: a forward pass over 32 rows costs little more than over one (the feature transform is
vectorised over the Arrow table, the program over the batch), so under concurrent load
scoring requests together multiplies throughput. A free worker takes what is queued at once;
while every worker is busy, a request waits at most ``max_latency_ms`` for company, and a batch
closes early when it holds ``max_batch_size`` instances. At most
``workers`` forward passes run at once (a thread pool: the model releases the GIL in its
kernels); while all are busy, arriving requests queue and form the next, larger batch.

Each request may name the model that scores it (``submit(instances, predict)``: the model the
request took when it arrived); only requests with the same one share a pass, so a hot reload
never mixes versions in one forward pass.

A batch that fails as a whole (one request's rows upset the model in a way ``check`` did not
catch) is retried request by request, so one bad request fails alone, not its batch-mates.
"""
from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

Predict = Callable[[list[Any]], list[dict[str, Any]]]
Item = tuple[list[Any], asyncio.Future, Predict]  # a request: its instances, its answer, its model


class MicroBatcher:
    """``await submit(instances)`` -> that request's predictions, computed in a shared batch."""

    def __init__(self, predict: Predict, max_batch_size: int = 32, max_latency_ms: float = 5.0, workers: int = 2,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.predict = predict
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_latency = max(0.0, float(max_latency_ms)) / 1000.0
        self.workers = max(1, int(workers))
        self.on_batch = on_batch or (lambda n: None)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="lingjie-serve")
        self._queue: collections.deque[Item] = collections.deque()
        self._queued = 0
        self._arrived: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1

    async def start(self) -> None:
        """Create the loop-bound parts; called from the app's lifespan (inside the event loop)."""
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self.workers)
        if self.batching:
            self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, instances: list[Any], predict: Predict | None = None) -> list[dict[str, Any]]:
        """That request's predictions by ``predict`` (default: the batcher's)."""
        assert self._slots is not None and self._arrived is not None, "start() the batcher first"
        predict = predict or self.predict
        if not self.batching:
            async with self._slots:
                loop = asyncio.get_running_loop()
                return (await loop.run_in_executor(self.executor, self._forward, [instances], predict))[0]
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((instances, future, predict))
        self._queued += len(instances)
        self._arrived.set()
        return await future

    def _forward(self, groups: list[list[Any]], predict: Predict) -> list[list[dict[str, Any]]]:
        """One predict over the concatenated groups, split back per group (runs in a worker)."""
        flat = [row for group in groups for row in group]
        self.on_batch(len(flat))
        predictions = predict(flat)
        out, start = [], 0
        for group in groups:
            out.append(predictions[start:start + len(group)])
            start += len(group)
        return out

    async def _collect(self) -> None:
        """Forever: wait for a request; when every worker is busy, gather company until full or
        the latency budget is spent; wait for a free worker, hand the batch off, start again."""
        assert self._arrived is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            # a free worker takes what is queued at once (a lone request never waits for company
            # that is not coming); while every worker is busy, company gathers for up to the budget
            if self._slots.locked():
                deadline = loop.time() + self.max_latency
                while self._queued < self.max_batch_size and (remaining := deadline - loop.time()) > 0:
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            await self._slots.acquire()
            batch = self._take()
            if self._queue:  # left for the next batch (another model's, or over the size)
                self._arrived.set()
            else:
                self._arrived.clear()
            if batch:
                asyncio.create_task(self._dispatch(batch))
            else:
                self._slots.release()

    def _take(self) -> list[Item]:
        """Requests from the queue up to max_batch_size instances (always at least one
        request), all for the model of the oldest one; requests for another model (a reload
        in between) keep their places for the next batch."""
        batch: list[Item] = []
        others: collections.deque[Item] = collections.deque()
        size = 0
        while self._queue:
            item = self._queue.popleft()
            instances, future, predict = item
            if future.done():  # the client went away while it waited
                self._queued -= len(instances)
                continue
            if batch and predict != batch[0][2]:
                others.append(item)
                continue
            if batch and size + len(instances) > self.max_batch_size:
                self._queue.appendleft(item)
                break
            batch.append(item)
            self._queued -= len(instances)
            size += len(instances)
        others.extend(self._queue)
        self._queue = others
        return batch

    async def _dispatch(self, batch: list[Item]) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        predict = batch[0][2]
        try:
            try:
                results = await loop.run_in_executor(self.executor, self._forward, [b[0] for b in batch], predict)
            except Exception as exc:  # noqa: BLE001 - handed to the requests, never kills the collector
                if len(batch) == 1:
                    _settle(batch[0][1], exc=exc)
                    return
                for instances, future, _ in batch:  # isolate the culprit: each request alone
                    try:
                        one_pass = await loop.run_in_executor(self.executor, self._forward, [instances], predict)
                        _settle(future, one_pass[0])
                    except Exception as one:  # noqa: BLE001
                        _settle(future, exc=one)
                return
            for (_, future, _), result in zip(batch, results):
                _settle(future, result)
        finally:
            self._slots.release()


def _settle(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
