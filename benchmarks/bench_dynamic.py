"""Dynamic embedding tables (issue 8): memory, speed, tier hit rate, AUC parity, 4x budget.

    .venv/bin/python benchmarks/bench_dynamic.py [--ids 10000000] [--distinct 1000000]
        [--criteo-rows 200000] [--repeats 3] [--only stream,speed,tiers,rebalance,criteo]

Parts (one thread: this 2-core machine is shared, multi-thread timings are noise):
  stream  a Zipf(1.05) stream of --ids ids over --distinct distinct 64-bit keys, 65,536 ids a
          step, counted and admitted (no gradients): table memory vs min_count, exact vs Bloom.
  speed   lookup + update (forward, backward, row-wise Adagrad, counting) ids/s of a
          DynamicEmbedding vs a plain nn.EmbeddingBag(sparse=True) + Adagrad with as many rows
          as the dynamic table holds, on the same Zipf batches; interleaved, median of repeats.
  tiers   share of looked-up ids served by the fastest tier vs its size (LFU, 2 tiers).
  rebalance  the training thread's time in tier rebalancing per trigger step, synchronous vs
          background (storage.background), and the loop's ids/s: lookup + update through a
          three-tier DynamicEmbedding (device, host, disk); interleaved, median of repeats.
  criteo  DeepFM on synthetic Criteo-shaped data (python -m dataio.datasets synth criteo):
          test AUC with a fixed hash table (hash_buckets) vs dynamic tables, and a run whose
          memory tier holds a quarter of the rows or less (the rest in the disk tier).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BATCH = 65_536


def zipf_stream(ids: int, distinct: int, seed: int = 0, exponent: float = 1.05) -> np.ndarray:
    """``ids`` int64 keys drawn Zipf(exponent) over ``distinct`` random 64-bit keys."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, distinct + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(ids))
    keys = rng.integers(-2 ** 62, 2 ** 62, distinct, dtype=np.int64)
    return keys[np.minimum(ranks, distinct - 1)]


def _table(dim: int, **cfg):
    from easyrec.dynamic.config import DynamicConfig, StorageConfig
    from easyrec.dynamic.table import DynamicTable

    storage = cfg.pop("storage", None)
    c = DynamicConfig(**cfg, **({"storage": StorageConfig(**storage)} if storage else {}))
    c.check("bench")
    return DynamicTable("bench", dim, c)


def bench_stream(stream: np.ndarray) -> list[dict]:
    from easyrec.dynamic.rowopt import RowOptimizer

    out = []
    for min_count, admission in ((1, "exact"), (2, "exact"), (2, "bloom"), (5, "exact"), (5, "bloom"),
                                 (10, "exact"), (10, "bloom")):
        t = _table(16, min_count=min_count, admission=admission, bloom_counters=1 << 23)
        t.set_optimizer(RowOptimizer("adagrad", 16))
        start = time.perf_counter()
        for i in range(0, len(stream), BATCH):
            u, c = torch.unique(torch.from_numpy(stream[i:i + BATCH]), return_counts=True)
            t.observe(u, c)
            t.end_step()
        secs = time.perf_counter() - start
        mem = t.memory_bytes()
        rows_bytes = t.num_rows * t.width * 4  # rows actually used (the tier tensor grows by doubling)
        out.append({"min_count": min_count, "admission": admission, "rows": t.num_rows,
                    "slots": t.index.live, "index_MB": mem["index"] / 2**20, "bloom_MB": mem["bloom"] / 2**20,
                    "rows_MB": rows_bytes / 2**20, "total_MB": (mem["index"] + mem["bloom"] + rows_bytes) / 2**20,
                    "Mids_per_s": len(stream) / secs / 1e6})
    return out


def bench_speed(stream: np.ndarray, repeats: int, steps: int = 40, batch: int = 16_384) -> dict:
    """Forward + backward + optimizer step over ``steps`` batches, ids/s (median of repeats)."""
    from easyrec.dynamic.config import DynamicConfig
    from easyrec.dynamic.engine import DynamicTables
    from easyrec.dynamic.module import DynamicEmbedding
    from easyrec.features.info import FeatureInfo
    from trainer.schema.spec import OptimizerPart

    dim = 16
    batches = [torch.from_numpy(stream[i * batch:(i + 1) * batch]) for i in range(steps)]
    offsets = torch.arange(batch + 1)
    info = FeatureInfo(name="f", kind="sparse", dim=dim, single=True)
    spec = OptimizerPart(name="adagrad", lr=0.05)

    def dynamic() -> tuple[float, float, int]:
        m = DynamicEmbedding("f", dim, DynamicConfig(), [info], [])
        hook = DynamicTables([m], spec, [])
        for b in batches[:5]:  # warm: admit the head of the distribution
            m({"f.values": b, "f.offsets": offsets})["f"].sum().backward()
            hook.step()
        start, cpu = time.perf_counter(), time.thread_time()
        for b in batches:
            m({"f.values": b, "f.offsets": offsets})["f"].pow(2).sum().backward()
            hook.step()
        return time.perf_counter() - start, time.thread_time() - cpu, m.table.num_rows

    def plain(rows: int) -> tuple[float, float]:
        bag = torch.nn.EmbeddingBag(rows, dim, mode="sum", include_last_offset=True, sparse=True)
        opt = torch.optim.Adagrad(bag.parameters(), lr=0.05)
        idx = [(b % rows) for b in batches]  # the fixed table's bucket of each id
        start, cpu = time.perf_counter(), time.thread_time()
        for b in idx:
            opt.zero_grad()
            bag(b, offsets).pow(2).sum().backward()
            opt.step()
        return time.perf_counter() - start, time.thread_time() - cpu

    # wall time, and the thread's CPU time (less sensitive to other jobs on a shared machine)
    dyn_t, dyn_cpu, plain_t, plain_cpu, rows = [], [], [], [], 0
    for _ in range(repeats):  # interleaved
        s, c, rows = dynamic()
        dyn_t.append(s)
        dyn_cpu.append(c)
        s, c = plain(rows)
        plain_t.append(s)
        plain_cpu.append(c)
    ids = steps * batch
    return {"ids": ids, "rows": rows, "dynamic_Mids_per_s": ids / statistics.median(dyn_t) / 1e6,
            "plain_Mids_per_s": ids / statistics.median(plain_t) / 1e6,
            "dynamic_Mids_per_cpu_s": ids / statistics.median(dyn_cpu) / 1e6,
            "plain_Mids_per_cpu_s": ids / statistics.median(plain_cpu) / 1e6,
            "dynamic_s": dyn_t, "plain_s": plain_t, "dynamic_cpu_s": dyn_cpu, "plain_cpu_s": plain_cpu}


def bench_tiers(stream: np.ndarray, distinct: int) -> list[dict]:
    out = []
    for frac in (0.01, 0.05, 0.1, 0.25):
        fast = max(1, int(distinct * frac))
        t = _table(16, storage={"tiers": ["device", "host"], "capacity": [fast, distinct],
                                "policy": "lfu", "rebalance_every_steps": 10})
        step = BATCH // 4
        warm = (len(stream) // 5) // step * step
        for i in range(0, len(stream), step):
            if i == warm:  # measure after a warm-up fifth of the stream
                t.stats["rows_hit"], t.tier_hits = 0, [0, 0]
            u, c = torch.unique(torch.from_numpy(stream[i:i + step]), return_counts=True)
            t.lookup(u, c)
            t.observe(u, c)
            t.end_step()
        out.append({"fast_tier_rows": fast, "fraction_of_distinct": frac, "hit_rate": t.hit_rate(),
                    "rows": t.tier_rows(), "moved": t.stats["moved"]})
    return out


def bench_rebalance(stream: np.ndarray, distinct: int, repeats: int, steps: int = 120,
                    batch: int = 16_384, every: int = 10, lag: int = 5) -> dict:
    """Every step's time in ``table.end_step`` (where rebalancing runs), by kind of step.

    sync: the trigger step (step % every == 0) ranks all rows and moves the misplaced ones.
    background: the trigger step copies the index columns, the step ``lag`` later waits for
    the worker if needed and applies the plan. Rebalance time per trigger on the training
    thread = (trigger-step + apply-step end_step) - 2 x a plain step's end_step (medians).
    """
    from easyrec.dynamic.config import DynamicConfig, StorageConfig
    from easyrec.dynamic.engine import DynamicTables
    from easyrec.dynamic.module import DynamicEmbedding
    from easyrec.features.info import FeatureInfo
    from trainer.schema.spec import OptimizerPart

    dim = 16
    warm = 60
    batches = [torch.from_numpy(stream[i * batch:(i + 1) * batch]) for i in range(warm + steps)]
    offsets = torch.arange(batch + 1)
    info = FeatureInfo(name="f", kind="sparse", dim=dim, single=True)
    spec = OptimizerPart(name="adagrad", lr=0.05)
    caps = [distinct // 20, distinct // 4, distinct]  # 5% device, 25% host, the rest on disk

    def run(background: bool) -> dict:
        cfg = DynamicConfig(seed=0, storage=StorageConfig(
            tiers=["device", "host", "disk"], capacity=caps, policy="lfu", rebalance_every_steps=every,
            background=background, apply_after_steps=lag))
        cfg.check("bench")
        m = DynamicEmbedding("f", dim, cfg, [info], [])
        hook = DynamicTables([m], spec, [])
        table = m.table
        times: dict[str, list[float]] = {"trigger": [], "apply": [], "plain": []}
        end_step = table.end_step

        def timed() -> None:
            t0 = time.perf_counter()
            end_step()
            dt = time.perf_counter() - t0
            if measuring:
                s = table.step
                kind = "trigger" if s % every == 0 else "apply" if background and s % every == lag % every else "plain"
                times[kind].append(dt)

        table.end_step = timed  # type: ignore[method-assign]
        measuring = False
        for b in batches[:warm]:  # fill the table (~2/3 of the keys admitted)
            m({"f.values": b, "f.offsets": offsets})["f"].sum().backward()
            hook.step()
        measuring = True
        start = time.perf_counter()
        for b in batches[warm:]:
            m({"f.values": b, "f.offsets": offsets})["f"].pow(2).sum().backward()
            hook.step()
        secs = time.perf_counter() - start
        table.wait()
        med = {k: statistics.median(v) * 1e3 if v else 0.0 for k, v in times.items()}
        per_trigger = med["trigger"] + (med["apply"] if background else 0.0) - (2 if background else 1) * med["plain"]
        return {"rows": table.num_rows, "tier_rows": table.tier_rows(), "Mids_per_s": steps * batch / secs / 1e6,
                "ms_trigger_step": med["trigger"], "ms_apply_step": med["apply"], "ms_plain_step": med["plain"],
                "ms_rebalance_per_trigger": per_trigger, "moved": table.stats["moved"],
                "plan_waited": table.stats["plan_waited"], "triggers": len(times["trigger"])}

    runs: dict[str, list[dict]] = {"sync": [], "background": []}
    for _ in range(repeats):  # interleaved
        runs["sync"].append(run(False))
        runs["background"].append(run(True))
    out = {}
    for mode, rs in runs.items():
        out[mode] = {k: statistics.median([r[k] for r in rs]) for k in
                     ("Mids_per_s", "ms_trigger_step", "ms_apply_step", "ms_plain_step", "ms_rebalance_per_trigger")}
        out[mode].update(rows=rs[-1]["rows"], tier_rows=rs[-1]["tier_rows"], moved=rs[-1]["moved"],
                         plan_waited=rs[-1]["plan_waited"], triggers=rs[-1]["triggers"],
                         runs_Mids_per_s=[r["Mids_per_s"] for r in rs],
                         runs_ms_rebalance_per_trigger=[r["ms_rebalance_per_trigger"] for r in rs])
    out.update(steps=steps, batch=batch, every=every, apply_after_steps=lag, capacities=caps)
    return out


def _criteo_cfg(train: Path, test: Path, run: Path, mode: str) -> dict:
    from trainer.compose import compose_config

    cfg = compose_config(["model=deepfm", "hardware.threads=1", "trainer.epochs=1", "trainer.progress_bar=false",
                          "trainer.export.enabled=false", "logger.tensorboard=false", f"hydra.run.dir={run}",
                          "data.batch_size=1024", "data.eval_batch_size=8192"])
    cfg["experiment_name"] = f"criteo_{mode}"
    cfg["data"].update(dataset=None, train_path=str(train), eval_path=str(test), group_by=None,
                       labels={"click": {"column": "label", "threshold": None}})
    feats = {f"I{i}": {"type": "raw", "normalizer": "log1p", "fill_null": 0.0} for i in range(1, 14)}
    for i in range(1, 27):
        f: dict = {"type": "id", "embedding_dim": 16}
        if mode == "hash":
            f["hash_buckets"] = 20_000
        elif mode == "dynamic":
            f["dynamic"] = {"min_count": 2, "admission": "bloom"}
        elif mode == "dynamic_mc1":
            f["dynamic"] = {"min_count": 1}
        elif mode == "dynamic_mc1_std0.01":
            f["dynamic"] = {"min_count": 1, "init_std": 0.01}
        else:  # budget: a memory tier of 2,000 rows per table, the rest memory-mapped on disk
            f["dynamic"] = {"min_count": 1, "storage": {"tiers": ["host", "disk"], "capacity": [2000, 200_000],
                                                         "rebalance_every_steps": 20}}
        feats[f"C{i}"] = f
    cfg["features"] = feats
    cats = [f"C{i}" for i in range(1, 27)]
    cfg["model"]["feature_groups"] = {"wide": cats, "deep": [*feats]}
    cfg["model"]["tasks"] = [{"name": "click", "label": "click", "type": "binary", "loss": "bce", "weight": 1.0}]
    cfg["trainer"]["optimizer"]["sparse"].update(name="adagrad", lr=0.05)
    return cfg


def bench_criteo(rows: int, modes: list[str]) -> list[dict]:
    import yaml

    from dataio.datasets.criteo_synth import write_criteo_synth
    from trainer.checkpoint_io import read_checkpoint
    from trainer.job import run_job

    tmp = Path(tempfile.mkdtemp(prefix="lingjie-dyn-criteo-"))
    write_criteo_synth(tmp / "train", rows, seed=0)
    write_criteo_synth(tmp / "test", max(20_000, rows // 4), seed=1)
    out = []
    for mode in modes:
        run = tmp / mode
        cfg = _criteo_cfg(tmp / "train", tmp / "test", run, mode)
        cfg["paths"]["run_dir"] = str(run)
        start = time.perf_counter()
        run_job(cfg, yaml.safe_dump(cfg))
        secs = time.perf_counter() - start
        m = json.loads((run / "metrics.json").read_text())
        row = {"mode": mode, "eval_auc": m["final"]["eval/auc"], "eval_logloss": m["final"]["eval/logloss"],
               "train_samples_per_s": m["train_samples_per_sec"], "seconds": secs}
        if mode != "hash":
            state = read_checkpoint(run / "checkpoints" / "epoch-0001.pt")
            tables = [v for k, v in state["model"].items() if k.endswith("_extra_state") and v["dim"] == 16]
            row["rows_total"] = int(sum(int(t["has_row"].sum()) for t in tables))
            row["largest_table_rows"] = max(int(t["has_row"].sum()) for t in tables)
            if mode == "budget":
                row["memory_tier_rows_max"] = 2000
                row["tables_over_4x_budget"] = sum(int(t["has_row"].sum()) >= 8000 for t in tables)
        row["max_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.append(row)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ids", type=int, default=10_000_000)
    p.add_argument("--distinct", type=int, default=1_000_000)
    p.add_argument("--criteo-rows", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="stream,speed,tiers,rebalance,criteo")
    p.add_argument("--criteo-modes", default="hash,dynamic,budget",
                   help="hash | dynamic (min_count 2, bloom) | budget (host+disk tiers) | dynamic_mc1 | "
                        "dynamic_mc1_std0.01")
    a = p.parse_args()
    torch.set_num_threads(1)
    parts = a.only.split(",")
    stream = zipf_stream(a.ids, a.distinct)
    print(f"# stream: {a.ids:,} ids, {len(np.unique(stream)):,} distinct of {a.distinct:,}", flush=True)
    results: dict = {}
    if "stream" in parts:
        results["stream"] = bench_stream(stream)
        print(json.dumps(results["stream"], indent=1), flush=True)
    if "speed" in parts:
        results["speed"] = bench_speed(stream, a.repeats)
        print(json.dumps(results["speed"], indent=1), flush=True)
    if "tiers" in parts:
        results["tiers"] = bench_tiers(stream[: a.ids // 2], a.distinct)
        print(json.dumps(results["tiers"], indent=1), flush=True)
    if "rebalance" in parts:
        results["rebalance"] = bench_rebalance(stream, a.distinct, a.repeats)
        print(json.dumps(results["rebalance"], indent=1), flush=True)
    if "criteo" in parts:
        results["criteo"] = bench_criteo(a.criteo_rows, a.criteo_modes.split(","))
        print(json.dumps(results["criteo"], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
