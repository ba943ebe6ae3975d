"""deepctr 0.9.4's DeepFM on TF (legacy tf.keras) over pre-encoded arrays; prints one JSON line.

    TF_USE_LEGACY_KERAS=1 benchmarks/.venv-peers/bin/python benchmarks/peers/deepctr_tf_deepfm.py \
        --data /tmp/encoded.npz [--epochs 5 --batch-size 1024 --seed 1024]

Runs in the peers venv (benchmarks/peers/setup.sh), never in the project venv: deepctr needs
tf-keras 2.21 and TF_USE_LEGACY_KERAS=1. The .npz is written by benchmarks/bench_tf.py from
Lingjie's fitted FeaturePipeline, so both sides see the same integer ids:

  {split}_{feature}      int32 [N]          one id per row (SparseFeat)
  {split}_{feature}      int32 [N, maxlen]  multi-value ids, 0-padded (VarLenSparseFeat)
  {split}_{feature}_len  int32 [N]          number of valid ids (the VarLenSparseFeat's length_name)
  {split}_{feature}      float32 [N, dim]   a dense feature (DenseFeat), when meta has "dense"
  {split}_y              float32 [N]        the label (the test split is optional)
  meta                   JSON: {"sparse": {name: vocab}, "varlen": {name: [vocab, maxlen, combiner]},
                                "dense": {name: dim}, "embedding_dim", "hidden_units", "lr",
                                "l2_reg_embedding", "l2_reg_linear"}

Only ``model.fit`` is timed, per epoch (a Keras callback around each epoch); the test AUC is
sklearn's roc_auc_score of ``model.predict`` after the last epoch.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    from encoded import epoch_timer, load, parse_args

    args = parse_args(__doc__)

    import numpy as np
    import tensorflow as tf
    import tf_keras
    from sklearn.metrics import log_loss, roc_auc_score

    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names
    from deepctr.models import DeepFM

    if tf.keras.layers.Dense is not tf_keras.layers.Dense:
        print("error: run with TF_USE_LEGACY_KERAS=1 (deepctr needs tf.keras = tf-keras 2.x)", file=sys.stderr)
        return 2

    meta, columns, split, has_test = load(args.data, SparseFeat, VarLenSparseFeat, DenseFeat, get_feature_names)
    x_train, y_train = split("train")

    tf_keras.utils.set_random_seed(args.seed)
    model = DeepFM(columns, columns, dnn_hidden_units=tuple(meta["hidden_units"]),
                   l2_reg_linear=float(meta["l2_reg_linear"]), l2_reg_embedding=float(meta["l2_reg_embedding"]),
                   l2_reg_dnn=0.0, dnn_dropout=0.0, dnn_use_bn=False, seed=args.seed, task="binary")
    model.compile(tf_keras.optimizers.Adam(learning_rate=float(meta["lr"])), "binary_crossentropy")

    timer = epoch_timer(tf_keras.callbacks.Callback)
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                        verbose=0, callbacks=[timer])
    n = len(y_train)
    out = {
        "name": "deepctr-tf",
        "versions": {"deepctr": __import__("deepctr").__version__, "tensorflow": tf.__version__,
                     "tf_keras": tf_keras.__version__},
        "train_rows": n,
        "epoch_seconds": timer.seconds,
        "samples_per_sec": [n / s for s in timer.seconds],
        "train_loss": [float(v) for v in history.history["loss"]],
        "parameters": int(model.count_params()),
    }
    if has_test:
        x_test, y_test = split("test")
        pred = model.predict(x_test, batch_size=4096, verbose=0).ravel()
        out.update(auc=float(roc_auc_score(y_test, pred)), test_rows=len(y_test),
                   logloss=float(log_loss(y_test, np.clip(pred, 1e-7, 1 - 1e-7))))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
