"""What both deepctr peer scripts share: the arguments, the encoded .npz (layout in
deepctr_tf_deepfm.py) turned into deepctr feature columns, and a per-epoch timer.

deepctr (TF) and deepctr-torch name their column classes alike but in different modules, and
the two scripts run in different venvs, so the classes are passed in rather than imported here.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable


def parse_args(doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz written by bench_rec.py / bench_tf.py")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1024)
    return parser.parse_args()


def load(path: str, sparse_feat: Any, varlen_feat: Any, dense_feat: Any, feature_names: Callable
         ) -> tuple[dict, list, Callable[[str], tuple[dict, Any]], bool]:
    """(meta, feature columns, split(prefix) -> (inputs, labels), has a test split)."""
    import numpy as np

    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    dim = int(meta["embedding_dim"])
    columns = [sparse_feat(name, vocabulary_size=int(vocab), embedding_dim=dim) for name, vocab in meta["sparse"].items()]
    columns += [varlen_feat(sparse_feat(name, vocabulary_size=int(vocab), embedding_dim=dim), maxlen=int(maxlen),
                            combiner=combiner, length_name=f"{name}_len")
                for name, (vocab, maxlen, combiner) in meta["varlen"].items()]
    columns += [dense_feat(name, int(d)) for name, d in meta.get("dense", {}).items()]
    names = feature_names(columns)

    def split(prefix: str) -> tuple[dict, Any]:
        return {n: data[f"{prefix}_{n}"] for n in names}, data[f"{prefix}_y"].astype(np.float32)

    return meta, columns, split, "test_y" in data.files


def epoch_timer(base: type) -> Any:
    """A callback (subclass of the framework's ``base``) recording each epoch's seconds."""

    class EpochTimer(base):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._t = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t)

    return EpochTimer()
