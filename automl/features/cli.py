"""`python -m automl features +experiment=NAME [overrides] [--max-depth 2] [--max-features 40] [--out DIR]`."""
from __future__ import annotations

import argparse
import logging
import warnings


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lingjie-automl features",
                                description="Deep Feature Synthesis (featuretools, cutoff times) + cross features")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +experiment=movielens_deepfm")
    p.add_argument("--max-depth", type=int, default=2)
    p.add_argument("--max-features", type=int, default=40, help="budget: DFS features + crosses")
    p.add_argument("--max-crosses", type=int, default=4)
    p.add_argument("--out", default=None, help="output directory (default outputs/automl/<experiment>/features)")
    p.add_argument("--rows", type=int, default=None,
                   help="only the first N train rows (and N/4 test rows), for quick runs; history stays complete")
    p.add_argument("--approximate", default="1d",
                   help="featuretools approximate window (floors cutoffs; still strictly before); 'none' = exact")
    p.add_argument("--encoding", choices=["bucket", "dense"], default="bucket")
    p.add_argument("--primitives", default=None, help="comma-separated aggregation primitives")
    p.add_argument("--groups", default=None, help="comma-separated model.feature_groups to extend (default: all)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    warnings.filterwarnings("ignore")  # woodwork/featuretools pandas deprecation chatter
    from automl.features.generate import run_features

    rep = run_features(a.overrides, out=a.out, max_depth=a.max_depth, max_features=a.max_features, rows=a.rows,
                       approximate=None if str(a.approximate).lower() == "none" else a.approximate,
                       max_crosses=a.max_crosses, encoding=a.encoding,
                       primitives=a.primitives.split(",") if a.primitives else None,
                       groups=a.groups.split(",") if a.groups else None)
    print(f"generated {len(rep.dfs_columns)} DFS features and {len(rep.crosses)} crosses in "
          f"{rep.seconds['total']:.1f}s (DFS {rep.seconds['dfs']:.1f}s)")
    print(f"augmented data: {rep.train_path}, {rep.eval_path}")
    print(f"snippet: {rep.snippet}")
    print(f"train with: {rep.command}", flush=True)
    return 0
