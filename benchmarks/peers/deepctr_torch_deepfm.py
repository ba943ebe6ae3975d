"""deepctr-torch 0.3.0's DeepFM over pre-encoded arrays; prints one JSON line.

    python benchmarks/peers/deepctr_torch_deepfm.py --data /tmp/encoded.npz [--epochs 5 --batch-size 1024]

Runs in the project venv (deepctr-torch 0.3.0 needs only torch, tqdm and scikit-learn; pinned in
setup.py's ``bench`` extra). The .npz is the one benchmarks/bench_rec.py writes from Lingjie's
fitted FeaturePipeline (layout: benchmarks/peers/deepctr_tf_deepfm.py), so both sides see the
same integer ids and dense values. Only ``model.fit`` is timed, per epoch (a callback around
each epoch); verbose=0, so deepctr-torch computes no per-batch metrics. The test AUC (when the
.npz has a test split) is sklearn's roc_auc_score of ``model.predict`` after the last epoch.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz written by bench_rec.py / bench_tf.py")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1024)
    args = parser.parse_args()

    import numpy as np
    import torch
    from sklearn.metrics import log_loss, roc_auc_score

    from deepctr_torch.callbacks import Callback
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names
    from deepctr_torch.models import DeepFM

    data = np.load(args.data)
    meta = json.loads(str(data["meta"]))
    dim = int(meta["embedding_dim"])
    columns = [SparseFeat(name, vocabulary_size=int(vocab), embedding_dim=dim)
               for name, vocab in meta["sparse"].items()]
    columns += [VarLenSparseFeat(SparseFeat(name, vocabulary_size=int(vocab), embedding_dim=dim),
                                 maxlen=int(maxlen), combiner=combiner, length_name=f"{name}_len")
                for name, (vocab, maxlen, combiner) in meta["varlen"].items()]
    columns += [DenseFeat(name, int(d)) for name, d in meta.get("dense", {}).items()]
    names = get_feature_names(columns)

    def split(prefix: str) -> tuple[dict, np.ndarray]:
        return {n: data[f"{prefix}_{n}"] for n in names}, data[f"{prefix}_y"].astype(np.float32)

    x_train, y_train = split("train")
    has_test = "test_y" in data.files
    torch.manual_seed(args.seed)
    model = DeepFM(columns, columns, dnn_hidden_units=tuple(meta["hidden_units"]),
                   l2_reg_linear=float(meta["l2_reg_linear"]), l2_reg_embedding=float(meta["l2_reg_embedding"]),
                   l2_reg_dnn=0.0, dnn_dropout=0.0, dnn_use_bn=False, seed=args.seed, task="binary", device="cpu")
    model.compile(torch.optim.Adam(model.parameters(), lr=float(meta["lr"])), "binary_crossentropy")

    class EpochTimer(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._t = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t)

    timer = EpochTimer()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                        verbose=0, callbacks=[timer])
    out = {"name": "deepctr-torch",
           "versions": {"deepctr_torch": __import__("deepctr_torch").__version__, "torch": torch.__version__},
           "threads": torch.get_num_threads(), "train_rows": len(y_train), "epoch_seconds": timer.seconds,
           "samples_per_sec": [len(y_train) / s for s in timer.seconds],
           "train_loss": [float(v) for v in history.history.get("loss", [])],
           "parameters": int(sum(p.numel() for p in model.parameters()))}
    if has_test:
        x_test, y_test = split("test")
        pred = model.predict(x_test, batch_size=4096).ravel()
        out.update(auc=float(roc_auc_score(y_test, pred)),
                   logloss=float(log_loss(y_test, np.clip(pred, 1e-7, 1 - 1e-7))), test_rows=len(y_test))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
