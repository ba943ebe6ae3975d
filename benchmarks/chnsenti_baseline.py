"""The reference baseline for chnsenti: character n-gram TF-IDF + logistic regression.

Same prepared splits as the experiments (``chnsenti`` and the leak-free ``chnsenti-dedup``);
C is chosen by 3-fold cross-validation on train only, never on test.

    python benchmarks/chnsenti_baseline.py [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow.parquet as pq


def run(name: str, data_dir: str | None) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV

    from dataio.datasets import ensure_dataset

    path = ensure_dataset(name, data_dir)
    train, test = pq.read_table(path / "train.parquet"), pq.read_table(path / "test.parquet")
    t = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    x_train = vec.fit_transform(train["text"].to_pylist())
    x_test = vec.transform(test["text"].to_pylist())
    y_train = np.asarray(train["label"].to_pylist())
    y_test = np.asarray(test["label"].to_pylist())
    clf = LogisticRegressionCV(Cs=[0.3, 1.0, 3.0, 10.0, 30.0], cv=3, max_iter=3000).fit(x_train, y_train)
    acc = float(np.mean(clf.predict(x_test) == y_test))
    return {"dataset": name, "test_accuracy": round(acc, 4), "C": float(clf.C_[0]),
            "features": int(x_train.shape[1]), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    for name in ("chnsenti", "chnsenti-dedup"):
        print(json.dumps(run(name, args.data_dir)), flush=True)


if __name__ == "__main__":
    main()
