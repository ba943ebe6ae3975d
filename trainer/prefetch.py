"""Run an iterator ahead of its consumer in a background thread (bounded, stoppable).

Why one helper: the input side of every domain (the rec loader's in-memory cache, easynlp's
text batches) overlaps batch preparation with the train step the same way — a bounded queue
(memory stays bounded), a stop event (a consumer that leaves early ends the producer), the
producer's exception re-raised in the consumer, and the time the consumer sat waiting counted.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Callable[[], Iterator[T]], depth: int = 2, name: str = "lingjie-prefetch",
             on_wait: Callable[[float], None] | None = None) -> Iterator[T]:
    """Yield what ``items()`` yields, produced up to ``depth`` items ahead in a daemon thread.

    ``on_wait(seconds)`` is told how long each item was waited for (the loader's ``wait``
    stage). Leaving the loop early (break, exception, garbage collection) stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items():
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # surfaced in the consumer
            put(exc)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            t = time.perf_counter()
            item = q.get()
            if on_wait is not None:
                on_wait(time.perf_counter() - t)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
