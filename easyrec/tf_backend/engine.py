"""The TF Engine: compiled train step (tf.function), two optimizers, tf.train.Checkpoint,
SavedModel export. Batches arrive as the same numpy ``Batch`` the torch engine gets."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import tensorflow as tf

from dataio.atomic import atomic_write_bytes, atomic_write_json, fsync_dir, fsync_tree, publish_dir_mode
from easyrec.features.batch import Batch
from easyrec.features.info import FeatureInfo
from trainer.checkpoint_io import META_FILE, TF_SUFFIX, meta_json_bytes
from trainer.engine import Engine
from trainer.run_dir import RunDir
from trainer.schema.spec import TrainerSpec
from trainer.timing import NO_LAPS


def dense_grad(grad: Any, variable: Any) -> tf.Tensor:
    """A gradient as a dense tensor (IndexedSlices through the fast ``densify``)."""
    if isinstance(grad, tf.IndexedSlices):
        from easyrec.models.tf.sparse_adam import densify

        return densify(grad, int(variable.shape[0]))
    return tf.convert_to_tensor(grad)


def _fill(structure: Any, flat: list) -> Any:
    """``structure`` (tuples, lists, dicts; output positions as leaves) with flat[i] for i."""
    if isinstance(structure, int):
        return flat[structure]
    if isinstance(structure, dict):
        return {k: _fill(v, flat) for k, v in structure.items()}
    items = [_fill(v, flat) for v in structure]
    return type(structure)(*items) if hasattr(structure, "_fields") else type(structure)(items)


class RowIndices(NamedTuple):
    """A staged batch that is only its rows of the engine's cache tensors (``row_stager``)."""

    rows: tf.Tensor


class TFEngine(Engine):
    backend = "tf"

    def __init__(self, model: Any, spec: TrainerSpec | None, total_steps: int = 1000,
                 features: dict[str, FeatureInfo] | None = None, dist: Any = None) -> None:
        from easyrec.models.tf.base import input_signature

        from trainer import tf_strategy as multiworker

        self.model = model
        self.features = features or model.features
        self.retrieval = bool(getattr(model, "retrieval", False))
        self.grad_clip_norm = spec.grad_clip_norm if spec else None
        # MultiWorkerMirroredStrategy (a TF worker of a multi-worker job): the caller builds the
        # model and this engine inside strategy.scope() (easyrec.restore.make_engine)
        self.strategy = multiworker.current() if dist is not None and getattr(dist, "kind", "") == "tf" else None
        self.is_chief = dist is None or dist.is_main
        self.local_has_next = True  # multi-worker: set by EqualStepsLoader before each step
        self.all_have_next = True  # ... and all-reduced by the step
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.sparse_vars = model.sparse_variables()
        self.dense_vars = model.dense_variables()
        self.optimizers: dict[str, Any] = {}
        self.l2 = {"sparse": 0.0, "dense": 0.0}
        if spec is not None:
            from easyrec.tf_backend.optim import coupled_l2, make_optimizer

            # model.sparse_grad=true: the tables' adam is SparseAdam (lazy), as on torch
            sparse_grad = bool(getattr(getattr(model, "cfg", None), "sparse_grad", False))
            self.l2 = {"sparse": coupled_l2(spec.optimizer.sparse, sparse_grad),
                       "dense": coupled_l2(spec.optimizer.dense)}

            self.optimizers = {"sparse": make_optimizer(spec.optimizer.sparse, spec.scheduler, total_steps,
                                                        sparse_grad),
                               "dense": make_optimizer(spec.optimizer.dense, spec.scheduler, total_steps)}
            if self.strategy is not None:
                for opt in self.optimizers.values():
                    multiworker.skip_keras_all_reduce(opt)
            from easyrec.tf_backend.fast import apply_fast_paths

            apply_fast_paths(model, dedup_ids=getattr(spec, "dedup_ids", False),
                             compile_dense=getattr(spec, "compile", False))
            if self.sparse_vars:
                self.optimizers["sparse"].build(self.sparse_vars)
            self.optimizers["dense"].build(self.dense_vars)
        # Keras 3 models do not expose their variables as checkpoint dependencies, so the model's
        # variables are tracked explicitly, in construction order (stable across processes).
        self.ckpt = tf.train.Checkpoint(model_variables=list(model.variables), step=self.step, **self.optimizers)
        self._input_spec = input_signature(self.features)
        self._labels: list[str] = list(dict.fromkeys(getattr(model, "task_labels", [])))
        label_spec = {k: tf.TensorSpec([None], tf.float32) for k in self._labels}
        # single process: the step is called as a concrete function over a flat list of
        # tensors (inputs in ``_input_spec`` order, then labels): no dict binding, no per-call
        # signature matching (~1 ms a step with 18 numpy arrays through the polymorphic one)
        self._flat_keys = list(self._input_spec)
        self._train_flat: Any = None  # made by the first train_step (needs the optimizers)
        self._packed: tuple[list[str], list[str]] | None = None
        self._cached_rows: Any = None  # row_stager: cached_rows.CachedRows
        self._train_rows: Any = None
        self._calls: dict[int, tuple] = {}  # id(concrete function) -> what _call needs to call it
        self.pack_inputs = True  # False: one tensor per input (the unpacked path; tests compare)
        if self.strategy is None:
            self._train_fn = tf.function(self._train_step, input_signature=[self._input_spec, label_spec])
        else:
            self._train_fn = tf.function(self._distributed_train_step,
                                         input_signature=[self._input_spec, label_spec, tf.TensorSpec([], tf.bool)])
        self._eval_fn = tf.function(self._eval_step, input_signature=[self._input_spec, label_spec])
        self._predict_fn = tf.function(self._predict_step, input_signature=[self._input_spec])

    def epoch_context(self) -> contextlib.AbstractContextManager:
        if self.strategy is None or self.strategy.num_replicas_in_sync == 1:
            return contextlib.nullcontext()
        return self._checked_epoch()

    @contextlib.contextmanager
    def _checked_epoch(self) -> Iterator[None]:
        yield
        self.check_replicas_in_sync()

    def check_replicas_in_sync(self) -> None:
        """Multi-worker: every worker must hold the same weights (same mean gradients, same
        updates); a cheap fingerprint (sum of each variable) is compared across the workers."""
        from trainer import tf_strategy as multiworker

        mine = np.array([float(tf.reduce_sum(tf.cast(tf.convert_to_tensor(v), tf.float64)))
                         for v in self.model.variables], np.float64)
        parts = [np.frombuffer(b, np.float64) for b in multiworker.all_gather_bytes(mine.tobytes())]
        bad = [i for i, p in enumerate(parts) if p.shape != mine.shape or not np.allclose(p, parts[0], rtol=1e-5,
                                                                                           atol=1e-6)]
        if bad:
            raise RuntimeError(f"TF workers {bad} hold different weights than worker 0 after step "
                               f"{int(self.step.numpy())}: the gradient all-reduce is broken")
        if self.is_chief:
            logging.getLogger("lingjie.tf").info("weights identical on all %d workers after step %d", len(parts),
                                                 int(self.step.numpy()))

    @property
    def num_parameters(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    # ----- compiled steps -----
    def _train_step(self, inputs: dict, labels: dict, has_next: Any = None) -> tuple:
        with tf.GradientTape() as tape:
            outputs = self.model(inputs, training=True)
            loss = self.model.loss(outputs, labels)
        variables = self.sparse_vars + self.dense_vars
        grads = tape.gradient(loss, variables)
        n = len(self.sparse_vars)
        if self.l2["sparse"] or self.l2["dense"]:
            # torch semantics: weight_decay adds wd * w to the gradient of every row
            grads = [g if g is None or not self.l2[part] else dense_grad(g, v) + self.l2[part] * v
                     for g, v, part in zip(grads, variables, ["sparse"] * n + ["dense"] * (len(variables) - n))]
        all_next = None
        if has_next is not None:
            # multi-worker (replica context): average the gradients over the workers, with the
            # "I have another batch" flags in the same all-reduce. The Keras optimizers' own
            # all-reduce (a SUM) is switched off (multiworker.skip_keras_all_reduce), so the
            # update, grad clipping included, is the single-process one on the mean gradient.
            present = [i for i, g in enumerate(grads) if g is not None]
            flag = tf.cast(has_next, tf.float32)
            reduced = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, [grads[i] for i in present] + [flag])
            grads = list(grads)
            for i, g in zip(present, reduced[:-1]):
                grads[i] = g
            all_next = reduced[-1] > 0.999
        if self.grad_clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_clip_norm)
        pairs_sparse = [(g, v) for g, v in zip(grads[:n], variables[:n]) if g is not None]
        pairs_dense = [(g, v) for g, v in zip(grads[n:], variables[n:]) if g is not None]
        if pairs_sparse:
            self.optimizers["sparse"].apply_gradients(pairs_sparse)
        if pairs_dense:
            self.optimizers["dense"].apply_gradients(pairs_dense)
        self.step.assign_add(1)
        if all_next is not None:
            return loss, self.model.predict_outputs(outputs), all_next
        return loss, self.model.predict_outputs(outputs)

    def _train_step_flat(self, *flat: tf.Tensor) -> tuple:
        n = len(self._flat_keys)
        return self._train_step(dict(zip(self._flat_keys, flat[:n])), dict(zip(self._labels, flat[n:])))

    def _packing(self) -> tuple[list[str], list[str]] | None:
        """(int64 keys, float32 keys) when every input is int64 or float32 with only the batch
        dimension unknown, so the batch can travel as one int64 and one float32 vector (plus
        their piece sizes) and be cut back into inputs inside the step; else None."""
        ints, floats = [], []
        for k in self._flat_keys:
            spec = self._input_spec[k]
            if any(d is None for d in spec.shape[1:]) or spec.dtype not in (tf.int64, tf.float32):
                return None
            (ints if spec.dtype == tf.int64 else floats).append(k)
        return ints, floats

    def _train_step_packed(self, ints: tf.Tensor, floats: tf.Tensor, int_sizes: tf.Tensor,
                           float_sizes: tf.Tensor) -> tuple:
        int_keys, float_keys = self._packed_keys()
        values: dict[str, tf.Tensor] = {}
        for keys, flat, sizes in ((int_keys, ints, int_sizes), (float_keys + self._labels, floats, float_sizes)):
            if keys:
                values.update(zip(keys, tf.split(flat, sizes, num=len(keys))))
        inputs = {}
        for k in self._flat_keys:
            tail = list(self._input_spec[k].shape[1:])
            inputs[k] = tf.reshape(values[k], [-1, *tail]) if tail else values[k]
        return self._train_step(inputs, {k: values[k] for k in self._labels})

    def _packed_keys(self) -> tuple[list[str], list[str]] | None:
        if not self.pack_inputs:
            return None
        if self._packed is None:
            self._packed = self._packing() or ([], [])  # ([], []): inputs that cannot be packed
        return self._packed if self._packed != ([], []) else None

    def row_stager(self, cache: Batch, single: frozenset[str]) -> Any:
        """Single process, ``data.cache=memory``: the cached inputs become tensors the step
        gathers from (``cached_rows.CachedRows``); a batch is then its row indices."""
        if self.strategy is not None:
            return None
        flat = cache.to_flat()
        if [k for k in self._flat_keys if k not in flat] or [k for k in self._labels if k not in cache.labels]:
            return None
        from easyrec.tf_backend.cached_rows import CachedRows

        self._cached_rows = CachedRows(cache, single, self._flat_keys, self._labels)
        self._train_rows = None
        return lambda rows: RowIndices(tf.convert_to_tensor(np.asarray(rows, dtype=np.int64)))

    def _train_step_rows(self, rows: tf.Tensor) -> tuple:
        inputs, labels = self._cached_rows.gather(rows)
        return self._train_step(inputs, labels)

    def stager(self) -> Any:
        """Single process: the loader's thread makes the step's (packed) argument tensors."""
        return self._flat_tensors if self.strategy is None else None

    def _call(self, fn: Any, tensors: list) -> Any:
        """Call a concrete step function with its flat argument tensors, eagerly.

        Why not ``fn(*tensors)``: TF's public call binds the arguments to the structured
        signature, re-flattens the ~40 captured variables, re-reads the function's definition
        and enters several context managers on every call — ~0.6 ms of Python per MovieLens
        step on this CPU, a sixth of the step. Here the function's name, output count and
        captures are looked up once and each step is one ``context.call_function`` (what
        TF's own call ends in); no tape or control dependency is ever active around the step.
        TF is pinned; should those internals move, the public call is used.
        """
        fast = self._calls.get(id(fn))
        if fast is None:
            try:
                from tensorflow.python.eager import context as eager_context

                atomic = fn._inference_function
                count = len(atomic.function_type.flat_outputs)
                # the outputs' structure with output positions as leaves (tf.nest's own packing
                # of the symbolic structure costs ~0.1 ms a call)
                fast = (fn, eager_context.context(), atomic.name, count, list(fn.captured_inputs),
                        tf.nest.pack_sequence_as(fn.structured_outputs, list(range(count))))
            except (AttributeError, ImportError):
                fast = (fn, None, None, 0, [], None)
            self._calls[id(fn)] = fast  # the function is held too, so its id is not reused
        _, ctx, name, outputs, captures, structure = fast
        if ctx is None or not ctx.executing_eagerly():
            return fn(*tensors)
        flat = ctx.call_function(name, list(tensors) + captures, outputs)
        return _fill(structure, flat)

    def _flat_train_fn(self) -> Any:
        if self._train_flat is None:
            if self._packed_keys() is not None:
                sig = [tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32),
                       tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64)]
                fn = self._train_step_packed
            else:
                sig = ([self._input_spec[k] for k in self._flat_keys]
                       + [tf.TensorSpec([None], tf.float32, name=k) for k in self._labels])
                fn = self._train_step_flat
            self._train_flat = tf.function(fn, input_signature=sig).get_concrete_function()
        return self._train_flat

    def _flat_tensors(self, batch: Batch) -> list:
        """The step's arguments. Packed (see ``_packing``): 4 tensors — converting ~20 small
        numpy arrays one by one and binding them to a 20-argument call cost ~0.6 ms a step."""
        flat = batch.to_flat()
        labels = [batch.labels[k].astype(np.float32, copy=False) for k in self._labels]
        packed = self._packed_keys()
        if packed is None:
            return [tf.convert_to_tensor(flat[k]) for k in self._flat_keys] + [tf.convert_to_tensor(x) for x in labels]
        int_keys, float_keys = packed
        out = []
        for parts, dtype in (([flat[k] for k in int_keys], np.int64),
                             ([flat[k] for k in float_keys] + labels, np.float32)):
            arrays = [np.ravel(np.asarray(a, dtype=dtype)) for a in parts]
            out.append((np.concatenate(arrays) if arrays else np.zeros(0, dtype),
                        np.array([a.size for a in arrays], np.int64)))
        (ints, int_sizes), (floats, float_sizes) = out
        return [tf.convert_to_tensor(ints), tf.convert_to_tensor(floats), tf.convert_to_tensor(int_sizes),
                tf.convert_to_tensor(float_sizes)]

    def _distributed_train_step(self, inputs: dict, labels: dict, has_next: tf.Tensor) -> tuple:
        """One MultiWorkerMirroredStrategy step on this worker's own (local) batch."""
        out = self.strategy.run(self._train_step, args=(inputs, labels, has_next))
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def _eval_step(self, inputs: dict, labels: dict) -> tuple:
        outputs = self.model(inputs, training=False)
        return self.model.loss(outputs, labels), self.model.predict_outputs(outputs)

    def _predict_step(self, inputs: dict) -> dict:
        return self.model.predict_outputs(self.model(inputs, training=False))

    def _inputs(self, batch: Batch) -> dict[str, np.ndarray]:
        flat = batch.to_flat()
        return {k: flat[k] for k in self._input_spec}

    def _labels_of(self, batch: Batch) -> dict[str, np.ndarray]:
        return {k: batch.labels[k].astype(np.float32, copy=False) for k in self._labels}

    def train_step(self, batch: Batch) -> tuple[float, dict[str, np.ndarray]]:
        # stages (trainer.timing): h2d (numpy -> tensors), step (the compiled forward + backward
        # + optimizer, one call: not split further), host (loss and predictions to numpy)
        clock = self.stage_clock
        laps = clock.begin() if clock is not None else NO_LAPS
        if self.strategy is None:
            staged = batch.staged
            if isinstance(staged, RowIndices):
                if self._train_rows is None:
                    self._train_rows = tf.function(self._train_step_rows, input_signature=[
                        tf.TensorSpec([None], tf.int64)]).get_concrete_function()
                fn, tensors = self._train_rows, [staged.rows]
            else:
                fn = self._flat_train_fn()
                tensors = staged if staged is not None else self._flat_tensors(batch)
            laps.lap("h2d")
            loss, preds = self._call(fn, tensors)
        else:
            inputs, labels, flag = self._inputs(batch), self._labels_of(batch), tf.constant(self.local_has_next)
            laps.lap("h2d")
            loss, preds, all_next = self._train_fn(inputs, labels, flag)
            self.all_have_next = bool(all_next)
        laps.lap("step")
        out = float(loss), {k: v.numpy() for k, v in preds.items() if k in self.model.task_names}
        laps.lap("host")
        if clock is not None:
            clock.end(laps)
        return out

    def eval_step(self, batch: Batch, recall_k: list[int]) -> tuple[float, dict[str, np.ndarray], dict[int, float]]:
        labels = self._labels_of(batch)
        loss, outputs = self._eval_fn(self._inputs(batch), labels)
        hits: dict[int, float] = {}
        if self.retrieval and recall_k:
            from easyrec.models.tf.retrieval import in_batch_recall_at_k

            pos = labels[self.model.task_labels[0]] > 0.5
            if int(pos.sum()) > 1:
                for k in recall_k:
                    hits[k] = float(in_batch_recall_at_k(tf.boolean_mask(outputs["user_emb"], pos),
                                                         tf.boolean_mask(outputs["item_emb"], pos), k))
        return float(loss), {k: v.numpy() for k, v in outputs.items() if k in self.model.task_names}, hits

    def predict(self, batch: Batch) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._predict_fn(self._inputs(batch)).items() if k in self.model.task_names}

    def current_lr(self) -> float:
        opt = self.optimizers.get("dense")
        if opt is None:
            return 0.0
        lr = opt.learning_rate
        return float(lr(self.step) if callable(lr) else lr)

    # ----- checkpoints -----
    def save(self, run: RunDir, name: str, meta: dict[str, Any]) -> Path:
        """A ``<name>.tfckpt`` directory (tf.train.Checkpoint files + meta.json), made in a temp
        dir and renamed into place, so a kill never leaves a half-written checkpoint."""
        final = run.checkpoints / f"{name}{TF_SUFFIX}"
        if not self.is_chief:
            # MultiWorkerMirroredStrategy's rule: every worker writes (saving may run collective
            # ops); a non-chief worker writes into a temporary directory it then removes.
            tmp = Path(tempfile.mkdtemp(prefix=f"lingjie-{name}-worker-"))
            try:
                self.ckpt.write(str(tmp / "vars"))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return final
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=run.checkpoints))
        self.ckpt.write(str(tmp / "vars"))
        with open(tmp / META_FILE, "wb") as fh:  # JSON, not pickle: reading it never runs code
            fh.write(meta_json_bytes(meta))
        publish_dir_mode(tmp)  # mkdtemp's 0700 would hide the checkpoint from a serving container
        fsync_tree(tmp)  # TF's files and meta.json are on disk before the rename publishes them
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=".old.", dir=run.checkpoints))
            os.replace(final, trash / final.name)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(run.checkpoints)
        if name != "best":
            atomic_write_bytes(run.checkpoints / "latest", final.name.encode())
        return final

    def restore(self, path: Path) -> dict[str, Any]:
        from trainer.checkpoint_io import read_meta

        meta = read_meta(path)
        status = self.ckpt.read(str(Path(path) / "vars"))
        if self.optimizers:
            status.assert_existing_objects_matched()
        else:  # evaluate / predict / export: the optimizer slots in the file are not needed
            status.expect_partial()
        return meta

    # ----- export -----
    def export(self, pipeline: Any, example: Batch, out_dir: Path, fmt: str, task_types: dict[str, str],
               extra_meta: dict[str, Any]) -> Path:
        from easyrec.models.tf.base import serving_signature

        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / "saved_model"
        tmp = Path(tempfile.mkdtemp(prefix=".saved_model.", dir=out_dir))
        tf.saved_model.save(self.model, str(tmp), signatures={"serving_default": serving_signature(self.model,
                                                                                                   self.features)})
        publish_dir_mode(tmp)  # mkdtemp's 0700 would hide the SavedModel from a serving container
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        pipeline.save(str(out_dir / "feature_state.json"))
        atomic_write_json(out_dir / "meta.json", {
            "format": "saved_model", "domain": "rec", "program": "saved_model", "inputs": sorted(self._input_spec),
            "tasks": task_types, "input_columns": pipeline.required_columns(with_labels=False), **extra_meta})
        return out_dir
