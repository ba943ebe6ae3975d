"""What every torch model of the zoo is: :class:`RecModel`, and :class:`ServingModule`.

The trainer relies only on this surface, so adding a model never touches the trainer:

* ``forward(inputs)`` takes the flat input dict of ``easyrec.features.batch`` and returns
  per-task logits (binary) or values (regression) keyed by task name, each [B]. Extra
  outputs (DSSM's ``user_emb`` / ``item_emb``) may ride along.
* ``loss(outputs, labels)`` is the weighted sum of the tasks' losses; ``labels`` is keyed
  by label name (``Batch.labels``), each task reads its ``label``.
* ``predict(outputs)`` turns logits into probabilities (what metrics and serving use).
* ``sparse_parameters()`` / ``dense_parameters()`` split embedding tables from the rest so
  the trainer can give tables their own optimizer / learning rate.
* ``retrieval = True`` marks two-tower models: the trainer then reports in-batch recall@k.
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import ModelConfig
from easyrec.models.torch.embedding import EmbeddingCollection


class RecModel(nn.Module):
    """Base of the zoo's torch models; subclasses build layers and implement ``forward``."""

    retrieval = False

    def __init__(self, cfg: ModelConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = dict(features)
        self.task_names: List[str] = [t.name for t in cfg.tasks]
        self.task_labels: List[str] = [t.label for t in cfg.tasks]
        self.task_binary: List[bool] = [t.type == "binary" for t in cfg.tasks]
        self.task_weights: List[float] = [float(t.weight) for t in cfg.tasks]

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def loss(self, outputs: Dict[str, Tensor], labels: Dict[str, Tensor]) -> Tensor:
        """Weighted sum over tasks of BCE-with-logits (binary) or MSE (regression)."""
        total = torch.zeros((), device=outputs[self.task_names[0]].device)
        for name, label, binary, weight in zip(
                self.task_names, self.task_labels, self.task_binary, self.task_weights):
            pred = outputs[name]
            if label not in labels:
                raise KeyError(f"task '{name}' needs label '{label}'; batch has {sorted(labels)}")
            target = labels[label].to(pred.dtype).reshape(pred.shape)
            if binary:
                task_loss = F.binary_cross_entropy_with_logits(pred, target)
            else:
                task_loss = F.mse_loss(pred, target)
            total = total + weight * task_loss
        return total

    def predict(self, outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Probabilities for binary tasks, values for regression; other outputs unchanged."""
        out: Dict[str, Tensor] = {}
        for k, v in outputs.items():
            out[k] = v
        for i, name in enumerate(self.task_names):
            if self.task_binary[i]:
                out[name] = torch.sigmoid(outputs[name])
        return out

    def embedding_modules(self) -> List[nn.Module]:
        """The model's embedding collections (the torch engine times them as the 'embedding' stage)."""
        return [m for m in self.modules() if isinstance(m, EmbeddingCollection)]

    def sparse_parameters(self) -> List[nn.Parameter]:
        """Embedding-table weights (of every EmbeddingCollection in the model)."""
        seen: set = set()
        params: List[nn.Parameter] = []
        for m in self.modules():
            if isinstance(m, EmbeddingCollection):
                for p in m.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        params.append(p)
        return params

    def dense_parameters(self) -> List[nn.Parameter]:
        """Every parameter that is not an embedding table."""
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]


class ServingModule(nn.Module):
    """What export writes: flat inputs -> predictions (probabilities for binary tasks).

    Puts the wrapped model in eval mode (no dropout, BatchNorm running stats). Works with
    ``torch.jit.script`` and ``torch.export.export`` (see ``example_inputs.dynamic_shapes``).
    """

    def __init__(self, model: RecModel) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return self.model.predict(self.model(inputs))
