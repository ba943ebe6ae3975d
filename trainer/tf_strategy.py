"""TF MultiWorkerMirroredStrategy for Lingjie's TF workers (one process per TF_CONFIG task).

* :func:`strategy` creates the process's one ``MultiWorkerMirroredStrategy`` from TF_CONFIG.
  TF requires it before any other TF op of the process (it configures the eager context for
  collectives), so ``trainer.process.start_training_process`` calls it (through ``DistContext.init_tf``) first.
* :func:`all_gather_bytes` / :func:`barrier`: the loop's object collectives, on the strategy's
  own collective ops (a pickled object travels as an int32 tensor).
* :class:`EqualStepsLoader`: collective ops hang when workers run different numbers of
  steps, and each worker's shard may hold a different number of batches (row counts, bad
  rows, the last partial chunk). Every train step all-reduces, along with the gradients, a
  flag "I have another batch"; the epoch ends on every worker at the first step after which
  some worker has none, so all workers always run the same steps (the longer shards' extra
  tail batches of that epoch are not trained on, as with ``drop_remainder``).

Checkpoints and the export: the loop calls ``engine.save`` on the chief only. That is safe
here because every variable is a MirroredVariable (no SyncOnRead ones), whose save reads the
local copy without collectives; ``TFEngine.save`` also follows TF's MWMS rule when a non-chief
worker calls it (it writes into a temporary directory and removes it).

Collective ops are matched across workers by the order in which each worker traces them:
every compiled function here has a fixed input signature (traced once), and every worker
calls them in the same program order.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Iterator

import numpy as np

log = logging.getLogger("lingjie.tf")

_STRATEGY: Any = None
_FUNCTIONS: dict[str, Any] = {}


def strategy() -> Any:
    """The process's MultiWorkerMirroredStrategy (created on the first call, from TF_CONFIG)."""
    global _STRATEGY
    if _STRATEGY is None:
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                               communication_options=options)
        log.info("MultiWorkerMirroredStrategy: task %s:%s of %d workers", resolver.task_type, resolver.task_id,
                 _STRATEGY.num_replicas_in_sync)
    return _STRATEGY


def current() -> Any:
    """The strategy if this process created one, else None (single-process TF)."""
    return _STRATEGY


def scope(dist: Any = None) -> Any:
    """``strategy.scope()`` for a TF worker of a multi-worker job, else a no-op context."""
    if dist is not None and getattr(dist, "kind", "none") == "tf":
        return strategy().scope()
    return nullcontext()


def local(value: Any) -> Any:
    """This worker's (only) local result of a ``strategy.run``."""
    return _STRATEGY.experimental_local_results(value)[0]


def skip_keras_all_reduce(optimizer: Any) -> None:
    """The engine all-reduces (MEAN) the gradients itself; Keras 3's TF optimizer would sum
    them over the replicas once more in replica context (``_all_reduce_sum_gradients``)."""
    if not callable(getattr(optimizer, "_all_reduce_sum_gradients", None)):
        raise RuntimeError(f"{type(optimizer).__name__} has no _all_reduce_sum_gradients: this Keras version's "
                           "optimizer reduces gradients differently; check trainer.tf_strategy")
    optimizer._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)


def _function(name: str) -> Any:
    fn = _FUNCTIONS.get(name)
    if fn is not None:
        return fn
    import tensorflow as tf

    s = strategy()
    if name == "gather":
        def replica_gather(x: tf.Tensor) -> tf.Tensor:
            return tf.distribute.get_replica_context().all_gather(tf.identity(x), axis=0)  # placed on the replica

        fn = tf.function(lambda x: s.run(replica_gather, args=(x,)),
                         input_signature=[tf.TensorSpec([None], tf.int32)])
    elif name == "sum":
        def replica_sum(x: tf.Tensor) -> tf.Tensor:
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(x))

        fn = tf.function(lambda x: s.run(replica_sum, args=(x,)),
                         input_signature=[tf.TensorSpec([], tf.int64)])
    else:
        raise KeyError(name)
    _FUNCTIONS[name] = fn
    return fn


def all_sum(value: int) -> int:
    """Sum of an integer over the workers (a collective: every worker must call it)."""
    return int(local(_function("sum")(np.int64(value))).numpy())


def barrier() -> None:
    all_sum(1)


def all_gather_bytes(data: bytes) -> list[bytes]:
    """Every worker's ``data``, in rank order (a collective: every worker must call it)."""
    n = strategy().num_replicas_in_sync
    lengths = local(_function("gather")(np.array([len(data)], np.int32))).numpy()
    width = -(-int(lengths.max()) // 4) * 4  # bytes travel as int32 words
    buf = np.zeros(width, np.uint8)
    buf[:len(data)] = np.frombuffer(data, np.uint8)
    out = local(_function("gather")(buf.view(np.int32))).numpy().view(np.uint8).reshape(n, width)
    return [out[i, :int(lengths[i])].tobytes() for i in range(n)]


class EqualStepsLoader:
    """A train BatchLoader whose epochs stop on every worker at the same step (see module doc).

    ``engine.train_step`` must be called once per yielded batch: it all-reduces
    ``engine.local_has_next`` and sets ``engine.all_have_next``.
    """

    def __init__(self, loader: Any, engine: Any) -> None:
        self.loader = loader
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[tuple[Any, Any]]:
        it = iter(self.loader.epoch(epoch, skip_batches))
        try:
            nxt = next(it, None)
            # an epoch starts only if every worker has a first batch (one small collective)
            if all_sum(0 if nxt is not None else 1) > 0:
                if nxt is not None:
                    log.info("epoch %d: another worker has no batch left; the epoch ends here", epoch + 1)
                return
            while True:
                cur = nxt
                nxt = next(it, None)
                self.engine.local_has_next = nxt is not None
                yield cur
                if not self.engine.all_have_next:
                    if nxt is not None:
                        log.info("epoch %d: the rest of this worker's shard is not trained on (another "
                                 "worker's shard ended first)", epoch + 1)
                    return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
