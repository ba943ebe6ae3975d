"""Lingjie vs the community implementations, one invocation, one process tree (issue 7).

    .venv/bin/python benchmarks/bench_rec.py [--repeats 2] [--epochs 3] [--criteo-rows 1000000]
        [--cases movielens,criteo,pipeline] [--no-results]
    .venv/bin/python benchmarks/bench_rec.py --cases switches [--repeats 2]   # each optimisation on vs off

Sides, on the same data, model dims (embedding 16, DNN 256-128-64) and batch size (1024):

* ours-torch / ours-tf: ``python -m trainer ...`` through the real CLI (its own process);
  samples/s = the train loop's clock from metrics.json (input pipeline included), plus the
  run's critical-path report (trainer.timing) that says what bounds it;
* deepctr-torch 0.3.0 (project venv, ``benchmarks/peers/deepctr_torch_deepfm.py``) and deepctr
  0.9.4 on TF (the peers venv, TF_USE_LEGACY_KERAS=1, ``benchmarks/peers/deepctr_tf_deepfm.py``),
  both fed the integer ids and dense values of the feature state our first run fitted (so all
  sides see identical inputs); only their ``model.fit`` is timed, per epoch, over arrays
  already in memory;
* bare-mlp: the dense part alone (DeepFM's DNN on its [B, 8 x 16] input + head, BCE, Adam) on
  tensors already in memory: the bound a DeepFM step cannot beat.

Cases: ``movielens`` (a: MovieLens-100k DeepFM, test AUC + samples/s; ours-torch also at batch
4096 against the bare MLP at 4096), ``criteo`` (b: synthetic Criteo-shaped rows, 13 dense + 26
categorical, DeepFM samples/s, one epoch), ``pipeline`` (c: Parquet -> Batch alone through the
BatchLoader, rows/s, with 1 / 2 thread / 2 process transform workers), ``switches`` (each
optimisation of trainer/ on vs off, ours-torch and ours-tf on MovieLens).

This machine's 2 cores are shared with other jobs: the sides of a case alternate (rotating order)
``--repeats`` times, every number is a median over repeats (and over epochs 2..N), min-max beside
it. Every side runs with the OpenMP settings it would get by default (OMP_WAIT_POLICY removed
from the environment; ours' hardware.omp_wait_policy=auto leaves it unset for one process).
Prints the tables and, unless ``--no-results``, replaces the section "## Speed vs peers and the
critical path (issue 7)" (or "## Each optimisation on vs off (issue 7)") of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS = ROOT / "benchmarks" / "peers"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Speed vs peers and the critical path (issue 7)"
SWITCH_SECTION = "## Each optimisation on vs off (issue 7)"
HIDDEN = [256, 128, 64]
# deepctr's hyperparameters in our config: embeddings N(0, 1e-4) and Adam lr 0.001 on every
# parameter (our tables' L2 3e-4 is already theirs: l2_reg_embedding 1.5e-4 on sum(w^2))
ALIGNED = ["model.embedding_init_std=0.0001", "trainer.optimizer.sparse.lr=0.001"]
# MovieLens sides and their extra overrides: ours-tf = the shipped config; -aligned = deepctr's
# hyperparameters; -bf16 adds the two opt-in switches of the TF step's compute and input (MLPs
# in bfloat16, the encoded training rows cached in memory)
ML_SIDES: dict[str, list[str]] = {
    "ours-torch": [], "ours-tf": ["trainer.backend=tf"],
    "ours-tf-aligned": ["trainer.backend=tf", *ALIGNED],
    "ours-tf-aligned-bf16": ["trainer.backend=tf", *ALIGNED, "hardware.precision=bf16", "data.cache=memory"],
    # one intra-op thread (hardware.threads=1): TF's inter-op pool still runs independent ops
    # side by side; deepctr-tf-t1 gets the same setting (TF_NUM_INTRAOP_THREADS=1)
    "ours-tf-aligned-t1": ["trainer.backend=tf", *ALIGNED, "hardware.threads=1"],
    "ours-tf-aligned-bf16-t1": ["trainer.backend=tf", *ALIGNED, "hardware.precision=bf16", "data.cache=memory",
                                "hardware.threads=1"],
    "deepctr-tf-t1": [],
    "deepctr-torch": [], "deepctr-tf": [], "ours-torch@4096": [], "bare-mlp@1024": [], "bare-mlp@4096": []}
DENSE_LR = 0.001
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
os.environ.pop("OMP_WAIT_POLICY", None)  # every side with its library defaults (spinning OpenMP)
CRITEO = ["hydra.searchpath=[file://" + str(ROOT / "benchmarks" / "configs") + "]", "+experiment=criteo_deepfm",
          # tables of ~400k rows: sparse gradients (torch SparseAdam; TF lazy Adam), no coupled L2
          "model.sparse_grad=true", "trainer.optimizer.sparse.weight_decay=0"]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def span(values: list[float], fmt: str = ",.0f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"


def steady(per_epoch: list[float]) -> list[float]:
    """Epochs 2..N (the first traces / warms up), or the one epoch there is."""
    return per_epoch[1:] if len(per_epoch) > 1 else per_epoch


# ----------------------------------------------------------------------------- sides
def run_ours(out: Path, tag: str, overrides: list[str], epochs: int, batch_size: int,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    run_dir = out / f"ours-{tag}"
    cmd = [sys.executable, "-m", "trainer", *overrides, f"trainer.epochs={epochs}", f"data.batch_size={batch_size}",
           f"model.hidden_units=[{','.join(map(str, HIDDEN))}]", f"trainer.optimizer.dense.lr={DENSE_LR}",
           "trainer.progress_bar=false", "trainer.export.enabled=false", "logger.tensorboard=false",
           f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ENV, **(env or {})}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_rec: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}")
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"run_dir": str(run_dir), "samples_per_sec": [h["train/samples_per_sec"] for h in m["history"]],
            "auc": m["final"].get("eval/auc"), "critical_path": m.get("critical_path"),
            "parameters": m["parameters"]}


def run_peer(kind: str, npz: Path, epochs: int, batch_size: int, peers_python: str,
             seed: int | None = None) -> dict[str, Any]:
    if kind == "deepctr-torch":
        cmd = [sys.executable, str(PEERS / "deepctr_torch_deepfm.py")]
        env = {**os.environ, **ENV}
    else:
        cmd = [peers_python, str(PEERS / "deepctr_tf_deepfm.py")]
        env = {**os.environ, **ENV, "TF_USE_LEGACY_KERAS": "1"}
        if kind.endswith("-t1"):
            env["TF_NUM_INTRAOP_THREADS"] = "1"
        env.pop("PYTHONPATH", None)
    cmd += ["--data", str(npz), "--epochs", str(epochs), "--batch-size", str(batch_size)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_rec: {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def run_self(args: list[str]) -> dict[str, Any]:
    """This script in a fresh process (bare MLP, pipeline): the same env as the other sides."""
    proc = subprocess.run([sys.executable, __file__, *args], env={**os.environ, **ENV}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_rec {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bare_mlp(input_dim: int, batch_size: int, seconds: float = 4.0) -> dict[str, Any]:
    """samples/s of DeepFM's DNN train step alone (in-memory tensors, BCE, Adam)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = input_dim
    for units in HIDDEN:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    model = nn.Sequential(*layers, nn.Linear(width, 1))
    opt = torch.optim.Adam(model.parameters(), lr=DENSE_LR)
    x = torch.randn(batch_size, input_dim)
    y = (torch.rand(batch_size) < 0.5).float()

    def step() -> None:
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    rates = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:  # windows of 10 steps; the median resists the load
        t = time.perf_counter()
        for _ in range(10):
            step()
        rates.append(10 * batch_size / (time.perf_counter() - t))
    return {"samples_per_sec": med(rates), "threads": torch.get_num_threads()}


def pipeline_rate(state: str, path: str, batch_size: int, workers: int, worker_type: str,
                  seconds_cap: float = 60.0) -> dict[str, Any]:
    """Rows/s of Parquet -> Batch through the train BatchLoader (shuffled, as in training)."""
    from dataio.source import Source
    from easyrec.features.pipeline import FeaturePipeline
    from easyrec.loader import BatchLoader

    pipeline = FeaturePipeline.load(state)
    src = Source(path, columns=pipeline.required_columns(with_labels=True))
    loader = BatchLoader(src, pipeline, batch_size, shuffle=True, seed=1, workers=workers, worker_type=worker_type)
    rates = []
    try:
        for epoch in range(2):  # the first epoch starts the workers; the second is reported
            t, rows = time.perf_counter(), 0
            for _, batch in loader.epoch(epoch):
                rows += batch.size
                if time.perf_counter() - t > seconds_cap:
                    break
            rates.append(rows / (time.perf_counter() - t))
    finally:
        loader.close()
    return {"rows_per_sec": rates[-1], "first_epoch_rows_per_sec": rates[0]}


# ----------------------------------------------------------------------------- encoding
def encode(run_dir: Path, splits: dict[str, str], npz: Path) -> dict[str, Any]:
    """Ids / dense values of ``splits`` (name -> parquet path) from the feature state the run
    fitted, in deepctr's input layout (see benchmarks/peers/deepctr_tf_deepfm.py)."""
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf

    from easyrec.features.pipeline import FeaturePipeline

    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    pipeline = FeaturePipeline.load(str(run_dir / "feature_state.json"))
    infos = pipeline.feature_infos()
    label = next(iter(cfg["data"]["labels"]))
    meta: dict[str, Any] = {"sparse": {}, "varlen": {}, "dense": {}}
    arrays: dict[str, np.ndarray] = {}
    dims = set()
    for split, path in splits.items():
        table = pq.read_table(path, columns=pipeline.required_columns(with_labels=True))
        batch = pipeline.transform(table)
        arrays[f"{split}_y"] = batch.labels[label].astype(np.float32)
        for name, values in batch.dense.items():
            arrays[f"{split}_{name}"] = values.astype(np.float32)
            meta["dense"][name] = int(values.shape[1])
        for name, sv in batch.sparse.items():
            info = infos[name]
            dims.add(int(info.dim))
            lengths = np.diff(sv.offsets)
            if cfg["features"][name]["type"] != "tag" and lengths.max() == 1 and lengths.min() == 1:
                arrays[f"{split}_{name}"] = sv.values.astype(np.int32)
                meta["sparse"][name] = int(info.num_embeddings)
                continue
            if name not in meta["varlen"]:
                meta["varlen"][name] = [int(info.num_embeddings), int(lengths.max()),
                                        cfg["features"][name].get("pooling", "sum")]
            maxlen = meta["varlen"][name][1]
            padded = np.zeros((len(lengths), maxlen), np.int32)
            rows = np.repeat(np.arange(len(lengths)), lengths)
            cols = np.arange(len(sv.values)) - np.repeat(sv.offsets[:-1], lengths)
            keep = cols < maxlen
            padded[rows[keep], cols[keep]] = sv.values[keep]
            arrays[f"{split}_{name}"] = padded
            arrays[f"{split}_{name}_len"] = np.minimum(lengths, maxlen).astype(np.int32)
    opt = cfg["trainer"]["optimizer"]
    meta.update({"embedding_dim": dims.pop() if len(dims) == 1 else 16, "hidden_units": HIDDEN, "lr": DENSE_LR,
                 # ours: coupled weight decay wd*w on the tables' gradient; keras/deepctr l2(c) adds
                 # c*sum(w^2) to the loss (gradient 2c*w): c = wd / 2
                 "l2_reg_embedding": float(opt["sparse"]["weight_decay"]) / 2,
                 "l2_reg_linear": float(opt["sparse"]["weight_decay"]) / 2})
    np.savez(npz, meta=np.array(json.dumps(meta)), **arrays)
    return meta


# ----------------------------------------------------------------------------- cases
def rotate(sides: list[str], r: int) -> list[str]:
    k = r % len(sides)
    return sides[k:] + sides[:k]


def case_movielens(out: Path, a: argparse.Namespace, peers_python: str) -> dict[str, Any]:
    from dataio.datasets import ensure_dataset

    d = ensure_dataset("movielens-100k")
    npz = out / "movielens.npz"
    sides = [s.strip() for s in a.ml_sides.split(",")] if a.ml_sides else list(ML_SIDES)
    unknown = sorted(set(sides) - set(ML_SIDES))
    if unknown:
        raise SystemExit(f"bench_rec: unknown --ml-sides {unknown}; choose from {list(ML_SIDES)}")
    res: dict[str, list[dict]] = {k: [] for k in sides}
    base = ["+experiment=movielens_deepfm"]
    if not npz.exists():  # deepctr gets the ids of our fitted feature state
        first = run_ours(out, "ml-encode", base, 1, 1024)
        encode(Path(first["run_dir"]), {"train": str(d / "train.parquet"), "test": str(d / "test.parquet")}, npz)
    for r in range(a.repeats):
        # --vary-seed: repeat r runs every side with seed r + 1 (AUC medians over seeds);
        # else each side keeps its own default seed (ours 42, deepctr 1024) in every repeat
        seed = r + 1 if a.vary_seed else None
        ours_seed = [f"seed={seed}"] if seed is not None else []
        for side in rotate(list(res), r):
            if side.startswith("ours-torch"):
                bs = 4096 if side.endswith("@4096") else 1024
                res[side].append(run_ours(out, f"ml-{side}-{r}", base + ours_seed, a.epochs, bs))
            elif side.startswith("ours-tf"):
                res[side].append(run_ours(out, f"ml-{side}-{r}", base + ours_seed + ML_SIDES[side], a.epochs, 1024))
            elif side.startswith("bare-mlp"):
                res[side].append(run_self(["--bare-mlp", side.split("@")[1], "--input-dim", "128"]))
            else:
                res[side].append(run_peer(side, npz, a.epochs, 1024, peers_python, seed))
            print(f"movielens {r + 1}/{a.repeats} {side}: {brief(res[side][-1])}", flush=True)
    return res


def case_criteo(out: Path, a: argparse.Namespace, peers_python: str) -> dict[str, Any]:
    from dataio.datasets import write_criteo_synth

    data = Path(a.criteo_dir or out / f"criteo-{a.criteo_rows}")
    ready = data.parent / f".{data.name}.ready"
    if not ready.exists():
        write_criteo_synth(data, a.criteo_rows, seed=0, files=4)
        ready.write_text("ok")
    npz = out / "criteo.npz"
    res: dict[str, list[dict]] = {k: [] for k in ("ours-torch", "ours-tf", "deepctr-torch", "deepctr-tf")}
    over = CRITEO + [f"data.train_path={data}"]
    for r in range(a.repeats):
        for side in rotate(list(res), r):
            if side.startswith("deepctr") and not npz.exists():
                continue
            if side.startswith("ours"):
                extra = ["trainer.backend=tf"] if side == "ours-tf" else []
                res[side].append(run_ours(out, f"criteo-{side}-{r}", over + extra, 1, 1024))
                if not npz.exists():
                    encode(Path(res[side][-1]["run_dir"]), {"train": str(data)}, npz)
            else:
                res[side].append(run_peer(side, npz, 1, 1024, peers_python))
            print(f"criteo {r + 1}/{a.repeats} {side}: {brief(res[side][-1])}", flush=True)
    for side in ("deepctr-torch", "deepctr-tf"):
        if len(res[side]) < a.repeats:
            res[side].append(run_peer(side, npz, 1, 1024, peers_python))
    res["_data"] = str(data)  # type: ignore[assignment]
    res["_state"] = str(Path(res["ours-torch"][0]["run_dir"]) / "feature_state.json")  # type: ignore[assignment]
    return res


def case_pipeline(a: argparse.Namespace, criteo: dict[str, Any]) -> dict[str, list[dict]]:
    variants = {"1 worker (inline thread)": ("1", "thread"), "2 thread workers": ("2", "thread"),
                "2 process workers": ("2", "process")}
    res: dict[str, list[dict]] = {k: [] for k in variants}
    for r in range(a.repeats):
        for name in rotate(list(variants), r):
            w, kind = variants[name]
            res[name].append(run_self(["--pipeline", criteo["_state"], criteo["_data"], "--workers", w,
                                       "--worker-type", kind]))
            print(f"pipeline {r + 1}/{a.repeats} {name}: {res[name][-1]['rows_per_sec']:,.0f} rows/s", flush=True)
    return res


SWITCHES = {
    "ours-torch": [("baseline (defaults)", []), ("trainer.dedup_ids=true", ["trainer.dedup_ids=true"]),
                   ("trainer.compile=true", ["trainer.compile=true"]), ("hardware.precision=bf16",
                                                                         ["hardware.precision=bf16"]),
                   ("hardware.omp_wait_policy=passive", ["hardware.omp_wait_policy=passive"]),
                   ("trainer.loader.workers=2 (processes)", ["trainer.loader.workers=2",
                                                            "trainer.loader.worker_type=process"]),
                   ("trainer.timing.enabled=false", ["trainer.timing.enabled=false"])],
    "ours-tf": [("baseline (defaults)", []), ("trainer.dedup_ids=true", ["trainer.dedup_ids=true"]),
                ("trainer.compile=true (XLA MLP)", ["trainer.compile=true"]),
                ("hardware.precision=bf16", ["hardware.precision=bf16"])],
}


def case_switches(out: Path, a: argparse.Namespace) -> dict[str, dict[str, list[dict]]]:
    res: dict[str, dict[str, list[dict]]] = {}
    for side, variants in SWITCHES.items():
        res[side] = {name: [] for name, _ in variants}
        backend = ["trainer.backend=tf"] if side == "ours-tf" else []
        for r in range(a.repeats):
            for name, extra in rotate(variants, r):
                env = {"OMP_WAIT_POLICY": "PASSIVE"} if "omp_wait_policy=passive" in name else None
                tag = re.sub(r"[^a-z0-9]+", "-", f"{side}-{name}-{r}".lower())
                res[side][name].append(run_ours(out, tag, ["+experiment=movielens_deepfm", *backend, *extra],
                                                a.epochs, 1024, env=env))
                print(f"switches {side} {r + 1}/{a.repeats} {name}: {brief(res[side][name][-1])}", flush=True)
    return res


# ----------------------------------------------------------------------------- report
def brief(r: dict[str, Any]) -> str:
    if "rows_per_sec" in r:
        return f"{r['rows_per_sec']:,.0f} rows/s"
    sps = r["samples_per_sec"]
    sps = [round(s) for s in sps] if isinstance(sps, list) else round(sps)
    return f"samples/s {sps}" + (f", test AUC {r['auc']:.4f}" if r.get("auc") is not None else "")


def rates(runs: list[dict]) -> list[float]:
    out: list[float] = []
    for r in runs:
        s = r["samples_per_sec"]
        out += steady(s) if isinstance(s, list) else [s]
    return out


def aucs(runs: list[dict]) -> list[float]:
    return [r["auc"] for r in runs if r.get("auc") is not None]


def bound_of(runs: list[dict]) -> str:
    reports = [r["critical_path"] for r in runs if r.get("critical_path")]
    if not reports:
        return "-"
    cp = reports[len(reports) // 2]
    ms = cp["ms_per_batch"]
    top = sorted(((v, k) for k, v in ms.items() if k not in ("read", "transform")), reverse=True)[:3]
    parts = ", ".join(f"{k} {v:.1f}" for v, k in top)
    return f"{cp['bound']} ({parts} ms/batch; input {cp['input_ms_per_batch']:.1f} ms in the worker, overlap " \
           f"{100 * (cp['overlap'] or 0):.0f}%)"


def table_speed(res: dict[str, list[dict]], ref: str, with_auc: bool) -> list[str]:
    head = "| side | samples/s (median) | min-max | ratio vs " + ref + (" | test AUC (median) | AUC min-max" if with_auc
                                                                        else "") + " | bound (critical path) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base = med(rates(res[ref])) if res.get(ref) else float("nan")
    for side, runs in res.items():
        if side.startswith("_") or not runs:
            continue
        r = rates(runs)
        row = f"| {side} | {med(r):,.0f} | {span(r)} | {med(r) / base:.2f}x"
        if with_auc:
            au = aucs(runs)
            row += f" | {med(au):.4f} | {span(au, '.4f')}" if au else " | - | -"
        lines.append(row + f" | {bound_of(runs)} |")
    return lines


def verdicts(ml: dict | None, cr: dict | None, pl: dict | None) -> list[str]:
    out = []
    if ml and all(ml.get(k) for k in ("ours-torch", "deepctr-torch", "ours-torch@4096", "bare-mlp@4096")):
        t, p = med(rates(ml["ours-torch"])), med(rates(ml["deepctr-torch"]))
        ta, pa = med(aucs(ml["ours-torch"])), med(aucs(ml["deepctr-torch"]))
        ok = t >= 3 * p and ta >= pa - 0.002
        out.append(f"- torch DeepFM >= 3x deepctr-torch at batch 1024, AUC >= theirs - 0.002: "
                   f"{'MET' if ok else 'NOT MET'} ({t / p:.2f}x; AUC {ta:.4f} vs {pa:.4f})")
        t4, b4 = med(rates(ml["ours-torch@4096"])), med(rates(ml["bare-mlp@4096"]))
        out.append(f"- torch DeepFM at batch 4096 >= 50% of the bare dense-MLP bound: "
                   f"{'MET' if t4 >= 0.5 * b4 else 'NOT MET'} ({100 * t4 / b4:.0f}%: {t4:,.0f} vs {b4:,.0f} samples/s)")
    for side in [k for k in (ml or {}) if k.startswith("ours-tf")]:
        for peer in [k for k in (ml or {}) if k.startswith("deepctr-tf")]:
            if not (ml[side] and ml[peer]):
                continue
            f, q = med(rates(ml[side])), med(rates(ml[peer]))
            fa, qa = med(aucs(ml[side])), med(aucs(ml[peer]))
            out.append(f"- TF DeepFM ({side}) >= 2x {peer} at equal or better AUC: "
                       f"{'MET' if f >= 2 * q and fa >= qa else 'NOT MET'} ({f / q:.2f}x; AUC {fa:.4f} vs {qa:.4f})")
    if pl:
        best = max(med([r["rows_per_sec"] for r in runs]) for runs in pl.values())
        out.append(f"- input pipeline >= 1M rows/s Criteo-shaped Parquet -> batch: "
                   f"{'MET' if best >= 1e6 else 'NOT MET'} (best {best:,.0f} rows/s)")
    return out


def write_section(title: str, body: list[str]) -> None:
    section = "\n".join([title, "", *body, ""])
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark and quality results\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def machine_note(load_start: tuple[float, ...]) -> str:
    import platform

    return (f"{os.cpu_count()} CPU cores, shared with other jobs; Python {platform.python_version()}; "
            f"1-min load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


def peers_python_path(given: str | None) -> str:
    if given:
        return given
    local = ROOT / "benchmarks" / ".venv-peers" / "bin" / "python"
    if local.exists():
        return str(local)
    out = subprocess.run(["bash", str(PEERS / "setup.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="movielens,criteo,pipeline", help="movielens,criteo,pipeline | switches")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="MovieLens epochs per run (criteo: 1)")
    p.add_argument("--criteo-rows", type=int, default=1_000_000)
    p.add_argument("--ml-sides", default=None, help=f"MovieLens sides, comma-separated (default: all of {list(ML_SIDES)})")
    p.add_argument("--vary-seed", action="store_true", help="repeat r runs every side with seed r+1")
    p.add_argument("--criteo-dir", default=None, help="reuse generated Criteo-shaped parquet here")
    p.add_argument("--peers-python", default=os.environ.get("LINGJIE_PEERS_PYTHON"),
                   help="python of the deepctr (TF) venv; default benchmarks/.venv-peers (made by peers/setup.sh)")
    p.add_argument("--out", default=None)
    p.add_argument("--no-results", action="store_true")
    # internal: one measurement in this (fresh) process
    p.add_argument("--bare-mlp", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--input-dim", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--pipeline", nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-type", default="thread", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.bare_mlp:
        print(json.dumps(bare_mlp(a.input_dim, a.bare_mlp)))
        return 0
    if a.pipeline:
        print(json.dumps(pipeline_rate(a.pipeline[0], a.pipeline[1], 1024, a.workers, a.worker_type)))
        return 0
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    out = Path(a.out or tempfile.mkdtemp(prefix="lingjie-bench-rec-"))
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    command = ".venv/bin/python benchmarks/bench_rec.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    if cases == ["switches"]:
        res = case_switches(out, a)
        body = [f"Command: `{command}`", "",
                f"Result, {dt.date.today().isoformat()}; {machine_note(load_start)}; {time.perf_counter() - t0:.0f} s. "
                f"MovieLens-100k DeepFM, batch 1024, {a.epochs} epochs per run, {a.repeats} runs per variant, the "
                "variants of a side alternating (rotating order); samples/s = median over epochs 2..N of all runs "
                "(the train loop's clock: input pipeline included).", ""]
        for side, variants in res.items():
            body += [f"**{side}**", "", "| variant | samples/s (median) | min-max | vs baseline | test AUC (median) | "
                     "bound (critical path) |", "|---|---|---|---|---|---|"]
            base = med(rates(variants["baseline (defaults)"]))
            for name, runs in variants.items():
                r, au = rates(runs), aucs(runs)
                body.append(f"| {name} | {med(r):,.0f} | {span(r)} | {med(r) / base:.2f}x | {med(au):.4f} | "
                            f"{bound_of(runs)} |")
            body.append("")
        print("\n".join(body))
        if not a.no_results:
            write_section(SWITCH_SECTION, body)
        return 0
    peers_python = peers_python_path(a.peers_python)
    ml = case_movielens(out, a, peers_python) if "movielens" in cases else None
    cr = case_criteo(out, a, peers_python) if ("criteo" in cases or "pipeline" in cases) else None
    pl = case_pipeline(a, cr) if "pipeline" in cases and cr else None
    body = [f"Command: `{command}`", "",
            f"Result, {dt.date.today().isoformat()}; {machine_note(load_start)}; whole invocation "
            f"{time.perf_counter() - t0:.0f} s. The sides of each case alternate (rotating order), {a.repeats} "
            "runs each; samples/s = median over epochs 2..N of every run (criteo: its one epoch), min-max beside "
            "it; ratios of medians. Ours: the train loop's clock from metrics.json (reads Parquet and runs the "
            "feature pipeline every epoch); deepctr / deepctr-torch: `model.fit` over encoded arrays in memory. "
            "No side gets OMP_WAIT_POLICY (library defaults; ours: hardware.omp_wait_policy=auto). The bound column is the critical-path "
            "report of the median run (trainer.timing; top three step stages, ms per batch).", ""]
    if ml:
        body += [f"**(a) MovieLens-100k DeepFM** (time split 80/20, 80,000 train rows; 8 fields x 16, DNN 256-128-64, "
                 f"batch 1024 unless marked, {a.epochs} epochs)", ""]
        body += table_speed(ml, "deepctr-torch" if ml.get("deepctr-torch") else "deepctr-tf", True) + [""]
    if cr and "criteo" in cases:
        body += [f"**(b) synthetic Criteo-shaped DeepFM**, {a.criteo_rows:,} rows (13 dense log1p + 26 categorical "
                 "vocab ids, 39 fields; ours with model.sparse_grad=true: torch SparseAdam / TF lazy Adam on the "
                 "tables, the peers dense Adam), batch 1024, one epoch", ""]
        body += table_speed({k: v for k, v in cr.items() if not k.startswith("_")}, "deepctr-torch", False) + [""]
    if pl:
        body += ["**(c) input pipeline alone**: Criteo-shaped Parquet -> Batch (BatchLoader, shuffled, batch 1024; "
                 "the second pass over the files)", "", "| transform workers | rows/s (median) | min-max |",
                 "|---|---|---|"]
        for name, runs in pl.items():
            r = [x["rows_per_sec"] for x in runs]
            body.append(f"| {name} | {med(r):,.0f} | {span(r)} |")
        body.append("")
    body += ["Targets (issue 7):", "", *verdicts(ml, cr, pl), ""]
    print("\n".join(body))
    print(f"runs under {out}")
    if not a.no_results:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
