"""The bare train step of the shipped MovieLens experiment: ms per step, no loader, no loop.

    .venv/bin/python benchmarks/bench_step.py [--backend torch|tf] [--batches 50] [--passes 5]

Pre-transforms ``--batches`` batches of ``data.batch_size`` rows of MovieLens train, warms up
on 10, then times ``engine.train_step`` over the rest ``--passes`` times and prints the median
ms/step. Used to tell a change of the step itself from input-pipeline or scheduling noise
(benchmarks/RESULTS.md, issue 16).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="torch", choices=["torch", "tf"])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--passes", type=int, default=5)
    a = p.parse_args()
    import pyarrow.parquet as pq

    from dataio.datasets import ensure_dataset
    from easyrec.data import make_pipeline
    from easyrec.restore import make_engine
    from trainer.compose import compose_config
    from trainer.process import seed_everything
    from trainer.schema.validate import validate

    spec = validate(compose_config(["+experiment=movielens_deepfm", f"trainer.backend={a.backend}"]))
    ensure_dataset(spec.root.data.dataset, spec.root.paths.data_dir)
    train = pq.read_table(spec.root.data.train_path)
    pipeline = make_pipeline(spec)
    pipeline.fit([train.slice(0, 65536)])
    bs = spec.root.data.batch_size
    batches = [pipeline.transform(train.slice(i * bs, bs), with_labels=True) for i in range(a.batches)]
    seed_everything(spec.root.seed, a.backend)
    engine = make_engine(a.backend, spec.model, pipeline, spec.root.trainer, "cpu", 10_000, None, "fp32")
    for b in batches[:10]:
        engine.train_step(b)
    times = []
    for _ in range(a.passes):
        t = time.perf_counter()
        for b in batches[10:]:
            engine.train_step(b)
        times.append((time.perf_counter() - t) / len(batches[10:]) * 1000)
    print(f"{a.backend}: {statistics.median(times):.3f} ms/step (median of {a.passes} passes over "
          f"{len(batches) - 10} batches of {bs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
