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

import json
import sys


def main() -> int:
    from encoded import epoch_timer, load, parse_args

    args = parse_args(__doc__)

    import numpy as np
    import torch
    from sklearn.metrics import log_loss, roc_auc_score

    from deepctr_torch.callbacks import Callback
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names
    from deepctr_torch.models import DeepFM

    meta, columns, split, has_test = load(args.data, SparseFeat, VarLenSparseFeat, DenseFeat, get_feature_names)
    x_train, y_train = split("train")
    torch.manual_seed(args.seed)
    model = DeepFM(columns, columns, dnn_hidden_units=tuple(meta["hidden_units"]),
                   l2_reg_linear=float(meta["l2_reg_linear"]), l2_reg_embedding=float(meta["l2_reg_embedding"]),
                   l2_reg_dnn=0.0, dnn_dropout=0.0, dnn_use_bn=False, seed=args.seed, task="binary", device="cpu")
    model.compile(torch.optim.Adam(model.parameters(), lr=float(meta["lr"])), "binary_crossentropy")

    timer = epoch_timer(Callback)
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
