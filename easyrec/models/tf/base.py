"""What every tf.keras model of the zoo is: :class:`RecModel`, and :func:`serving_signature`.

The tf twin of ``easyrec.models.torch.base``; the trainer relies only on this surface:

* ``call(inputs, training=False)`` takes the flat input dict of ``easyrec.features.batch``
  (as tensors) and returns per-task logits (binary) or values (regression) keyed by task
  name, each [B]. Extra outputs (DSSM's ``user_emb`` / ``item_emb``) may ride along.
* ``loss(outputs, labels)`` is the weighted sum of the tasks' losses (BCE with logits /
  MSE, means over the batch); ``labels`` is keyed by label name, each task reads its
  ``label``. (Keras' ``compile`` stores its own loss under ``model.loss``; here ``loss``
  is a read-only property returning :meth:`RecModel.task_loss`, and a compiled loss is
  kept aside, so the zoo's method is never shadowed. Subclasses override ``task_loss``.)
* ``predict_outputs(outputs)`` turns logits into probabilities (keras' ``predict`` is
  left alone).
* ``sparse_variables()`` / ``dense_variables()`` split the fused embedding tables from the
  other trainable variables so the trainer can give tables their own optimizer. A table's
  gradient is a ``tf.IndexedSlices`` (only the looked-up rows) whatever ``sparse_grad``
  says; on TF that knob only picks the tables' optimizer (adam -> SparseAdam, as on torch).
* ``retrieval = True`` marks two-tower models: the trainer then reports in-batch recall@k.

Every variable is created in the constructor (widths come from the FeatureInfos; models
are ``built`` at once, so optimizers, ``load_weights`` and ``tf.train.Checkpoint`` work
before the first batch), and ``call`` uses tf ops only, with no Python branch on a tensor
value, so it runs eagerly and inside one ``tf.function`` for every batch size and id count
(trace the train step with :func:`input_signature` or ``reduce_retracing=True``: id counts
change every batch). Under ``keras.mixed_precision.set_global_policy("mixed_bfloat16")``
set before building (hardware.precision=bf16), MLPs, cross and attention layers compute in
bfloat16 while tables, pooling, outputs and losses stay float32.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging as absl_logging

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import ModelConfig
from easyrec.models.tf.embedding import FusedEmbeddingBag


class RecModel(tf.keras.Model):
    """Base of the zoo's tf.keras models; subclasses build layers and implement ``call``."""

    retrieval = False

    def __init__(self, cfg: ModelConfig, features: Dict[str, FeatureInfo]) -> None:
        # the model's own inputs stay float32 under a mixed policy; its MLPs follow the policy
        super().__init__(name=cfg.name, dtype="float32")
        self.cfg = cfg
        self._feature_infos = tuple(features.values())
        self.task_names: List[str] = [t.name for t in cfg.tasks]
        self.task_labels: List[str] = [t.label for t in cfg.tasks]
        self.task_binary: List[bool] = [t.type == "binary" for t in cfg.tasks]
        self.task_weights: List[float] = [float(t.weight) for t in cfg.tasks]

    @property
    def features(self) -> Dict[str, FeatureInfo]:
        """Every FeatureInfo the model was built with (name -> info)."""
        return {f.name: f for f in self._feature_infos}

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------------- loss
    @property
    def loss(self) -> Any:
        """The zoo's loss: ``model.loss(outputs, labels)`` (see :meth:`task_loss`)."""
        return self.task_loss

    @loss.setter
    def loss(self, value: Any) -> None:  # keras' Trainer/compile assign here; keep it aside
        self.__dict__["_keras_loss"] = value

    def task_loss(self, outputs: Dict[str, tf.Tensor], labels: Dict[str, Any]) -> tf.Tensor:
        """Weighted sum over tasks of BCE-with-logits (binary) or MSE (regression)."""
        total: Optional[tf.Tensor] = None
        for name, label, binary, weight in zip(
                self.task_names, self.task_labels, self.task_binary, self.task_weights):
            pred = outputs[name]
            if label not in labels:
                raise KeyError(f"task '{name}' needs label '{label}'; batch has {sorted(labels)}")
            target = tf.reshape(tf.cast(labels[label], pred.dtype), tf.shape(pred))
            if binary:
                task = tf.reduce_mean(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=pred))
            else:
                task = tf.reduce_mean(tf.square(pred - target))
            term = weight * task
            total = term if total is None else total + term
        assert total is not None
        return total

    def predict_outputs(self, outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Probabilities for binary tasks, values for regression; other outputs unchanged."""
        out = dict(outputs)
        for name, binary in zip(self.task_names, self.task_binary):
            if binary:
                out[name] = tf.sigmoid(outputs[name])
        return out

    # -------------------------------------------------------------------- variables
    def _embedding_layers(self) -> List[FusedEmbeddingBag]:
        found: List[FusedEmbeddingBag] = []
        for layer in self._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, FusedEmbeddingBag):
                found.append(layer)
        return found

    def sparse_variables(self) -> List[tf.Variable]:
        """The fused embedding tables (of every EmbeddingCollection in the model)."""
        seen: set = set()
        out: List[tf.Variable] = []
        for layer in self._embedding_layers():
            v = layer.weight
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def dense_variables(self) -> List[tf.Variable]:
        """Every trainable variable that is not an embedding table."""
        sparse = {id(v) for v in self.sparse_variables()}
        return [v for v in self.trainable_variables if id(v) not in sparse]

    # ------------------------------------------------------------------- keras hooks
    @property
    def _default_save_signature(self) -> None:
        """No keras-made signature (it would guess float inputs); export through
        :func:`serving_signature`."""
        return None


def input_signature(features: Dict[str, FeatureInfo]) -> Dict[str, tf.TensorSpec]:
    """One ``tf.TensorSpec`` per flat input key (``Batch.to_flat`` layout): a dynamic batch
    dim and dynamic id counts; a dense width and a sequence's max_len stay fixed."""
    spec: Dict[str, tf.TensorSpec] = {}
    for name, info in features.items():
        if info.kind == "dense":
            spec[name] = tf.TensorSpec([None, int(info.dim)], tf.float32, name=name)
        elif info.kind == "sparse":
            spec[name + ".values"] = tf.TensorSpec([None], tf.int64, name=name + ".values")
            spec[name + ".offsets"] = tf.TensorSpec([None], tf.int64, name=name + ".offsets")
            if info.weighted:
                spec[name + ".weights"] = tf.TensorSpec([None], tf.float32,
                                                        name=name + ".weights")
        else:
            spec[name + ".values"] = tf.TensorSpec([None, int(info.max_len)], tf.int64,
                                                   name=name + ".values")
            spec[name + ".lengths"] = tf.TensorSpec([None], tf.int64, name=name + ".lengths")
    return spec


def serving_signature(model: RecModel, features: Optional[Dict[str, FeatureInfo]] = None
                      ) -> Any:
    """A ``tf.function`` (explicit ``input_signature``) mapping the flat inputs to the
    predictions dict (probabilities for binary tasks), in inference mode.

    ``features`` defaults to the model's own FeatureInfos (the inputs the pipeline feeds).
    Export with ``tf.saved_model.save(model, path, signatures={"serving_default": fn})``
    (or :func:`save_serving`, the same minus absl's notes about dotted names); after
    ``loaded = tf.saved_model.load(path)``, call
    ``loaded.signatures["serving_default"](**flat_inputs)``: the SignatureDef's input keys
    are the flat keys themselves (``user_id.values``...), outputs the predictions' keys.
    """
    spec = input_signature(features if features is not None else model.features)

    @tf.function(input_signature=[spec])
    def serve(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return model.predict_outputs(model(inputs, training=False))

    return serve


def save_serving(model: RecModel, path: str, features: Optional[Dict[str, FeatureInfo]] = None
                 ) -> None:
    """``tf.saved_model.save`` of ``model`` with :func:`serving_signature` as
    ``serving_default``. TF notes once per dotted input name that it is "not a valid
    tf.function parameter name" (harmless: the SignatureDef keeps the dotted keys); those
    notes are muted here."""
    fn = serving_signature(model, features)
    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        tf.saved_model.save(model, path, signatures={"serving_default": fn})
    finally:
        absl_logging.set_verbosity(level)
