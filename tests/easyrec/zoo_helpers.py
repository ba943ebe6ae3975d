"""Shared features, configs and batches for the model-zoo tests (a helper module: no tests of
its own), kept small so every test runs in well under a second or two."""
from __future__ import annotations

from typing import Dict

import torch

from easyrec.features.info import FeatureInfo
from easyrec.models import specs
from easyrec.models.torch.example_inputs import random_inputs

FEATURES: dict[str, FeatureInfo] = {
    "age": FeatureInfo("age", "dense", 3),
    "user_id": FeatureInfo("user_id", "sparse", 8, num_embeddings=64),
    "item_id": FeatureInfo("item_id", "sparse", 8, num_embeddings=64, embedding_name="item"),
    "city": FeatureInfo("city", "sparse", 8, num_embeddings=10, pooling="mean"),
    "tags": FeatureInfo("tags", "sparse", 4, num_embeddings=20, weighted=True),
    "hist": FeatureInfo("hist", "sequence", 8, num_embeddings=64, embedding_name="item",
                        max_len=6),
}

TWO_TASKS = [specs.TaskConfig(name="click", label="click"),
             specs.TaskConfig(name="rating", label="rating", type="regression", loss="mse",
                              weight=0.5)]


def make_config(name: str) -> specs.ModelConfig:
    """A small config of each zoo model over FEATURES."""
    if name == "lr":
        return specs.LRConfig(feature_groups={"wide": ["age", "user_id", "item_id", "tags",
                                                       "hist"]})
    if name == "wide_and_deep":
        return specs.WideAndDeepConfig(
            feature_groups={"wide": ["user_id", "item_id"],
                            "deep": ["age", "user_id", "item_id", "city", "tags", "hist"]},
            hidden_units=[16, 8])
    if name == "deepfm":
        return specs.DeepFMConfig(
            feature_groups={"wide": ["age", "user_id", "item_id", "tags"],
                            "deep": ["age", "user_id", "item_id", "city", "hist"]},
            hidden_units=[16, 8])
    if name == "dcnv2":
        return specs.DCNv2Config(
            feature_groups={"deep": ["age", "user_id", "item_id", "tags"]},
            cross_layers=2, low_rank=4, hidden_units=[16])
    if name == "dcnv2_parallel":
        return specs.DCNv2Config(
            feature_groups={"deep": ["age", "user_id", "item_id", "tags"]},
            cross_layers=2, low_rank=None, hidden_units=[16], structure="parallel",
            batchnorm=True)
    if name == "din":
        return specs.DINConfig(
            feature_groups={"deep": ["age", "user_id", "item_id", "tags"], "sequence": ["hist"]},
            attention_units=[8], hidden_units=[16])
    if name == "mmoe":
        return specs.MMoEConfig(
            feature_groups={"deep": ["age", "user_id", "item_id", "tags"]},
            num_experts=3, expert_units=[16], gate_units=[8], tower_units=[8], tasks=TWO_TASKS)
    if name == "dssm":
        return specs.DSSMConfig(
            feature_groups={"user": ["age", "user_id", "hist"], "item": ["item_id", "tags"]},
            tower_units=[16], output_dim=8, temperature=0.1)
    return _make_ranking_config(name)


FIELDS = ["age", "user_id", "item_id", "city", "hist"]  # every embedded one has dim 8


def _make_ranking_config(name: str) -> specs.ModelConfig:
    """The second-wave ranking models (their field interactions need one embedding dim)."""
    if name == "xdeepfm":
        return specs.XDeepFMConfig(
            feature_groups={"wide": ["age", "user_id", "item_id", "tags"], "deep": FIELDS},
            cin_layer_sizes=[8, 6], hidden_units=[16])
    if name == "autoint":
        return specs.AutoIntConfig(feature_groups={"deep": FIELDS}, attention_layers=2,
                                   attention_heads=2, attention_dim=4, hidden_units=[16])
    if name == "dlrm":
        return specs.DLRMConfig(feature_groups={"deep": FIELDS}, bottom_units=[8],
                                top_units=[16])
    if name in ("masknet", "masknet_serial"):
        return specs.MaskNetConfig(
            feature_groups={"deep": ["age", "user_id", "item_id", "tags", "hist"]},
            mode="parallel" if name == "masknet" else "serial", num_blocks=2, block_dim=8,
            hidden_units=[16])
    raise KeyError(name)


ALL_CONFIGS = ["lr", "wide_and_deep", "deepfm", "dcnv2", "dcnv2_parallel", "din", "mmoe",
               "dssm", "xdeepfm", "autoint", "dlrm", "masknet", "masknet_serial"]


def make_batch(batch_size: int, seed: int = 0) -> tuple[Dict[str, torch.Tensor],
                                                        Dict[str, torch.Tensor]]:
    """Random inputs where row i has user i and item i (so a model can memorise every row),
    plus labels for every task used above."""
    inputs = random_inputs(FEATURES, batch_size, seed=seed)
    rows = torch.arange(batch_size)
    for f in ("user_id", "item_id"):
        inputs[f + ".values"] = rows % 64
        inputs[f + ".offsets"] = torch.arange(batch_size + 1)
    g = torch.Generator().manual_seed(seed + 100)
    labels = {"like": torch.randint(0, 2, (batch_size,), generator=g).float(),
              "click": torch.randint(0, 2, (batch_size,), generator=g).float(),
              "rating": torch.randn(batch_size, generator=g)}
    return inputs, labels
