"""``lingjie serve`` under load: dynamic batching vs none vs the bare forward pass (issue 19).

    .venv/bin/python benchmarks/bench_serving.py [--cases movielens,digits,chnsenti] [--duration 8]
        [--concurrency 1,8,64] [--run movielens=DIR ...] [--pin] [--workers 2] [--threads N]
        [--out DIR] [--json FILE]

For each case a small run is trained through the real CLI (or ``--run CASE=DIR`` is served),
then, each cell for ``--duration`` seconds after a 2 s warm-up:

* batching: ``python -m trainer serve RUN`` with its defaults (max batch 32, 5 ms) as a
  subprocess on 127.0.0.1, loaded by a closed-loop HTTP client at each concurrency (C
  connections, each sending the next request as soon as its answer arrives);
* no-batching: the same server with ``--no-batching``;
* bound: the bare forward pass in a process of its own (the domain's serving adapter, i.e.
  ExportedModel.predict plus the JSON-row -> Arrow step, no HTTP): one instance per call, and
  batches of 32 / 64 instances per call (instances/s): what batching could reach at best.

Requests are KServe v1 ``POST /v1/models/NAME:predict`` with one instance each (real test rows
for MovieLens, the adapter's example instances for digits / chnsenti), keep-alive connections.
The load generator (asyncio + aiohttp) runs in its own process; ``--pin`` pins the server to
CPU 0 and the client to CPU 1 with taskset (else both share every core, as they would on one
small machine). Reported: req/s (answers completed inside the window / its length), latency
p50 / p95 / p99, non-200 answers, and the server's mean forward-pass size (from /metrics).
Prints Markdown tables and exits; results are recorded by hand in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
QUIET = ["trainer.progress_bar=false", "logger=none", "trainer.plots=false", "trainer.epochs=1"]
# small runs: what is served matters (the model's shape), not how well it was trained
TRAIN = {
    "movielens": ["+experiment=movielens_deepfm", "data.limit_train_rows=5000", "data.limit_eval_rows=500",
                  "data.batch_size=256"],
    "digits": ["+experiment=digits_resnet", "data.limit_train_rows=256", "data.limit_eval_rows=64",
               "data.batch_size=32"],
    "chnsenti": ["+experiment=chnsenti_textcnn", "data.limit_train_rows=500", "data.limit_eval_rows=100"],
}
DOMAIN = {"movielens": "rec", "digits": "cv", "chnsenti": "nlp"}
ML_COLUMNS = ["user_id", "item_id", "gender", "age", "occupation", "zip_code", "genres", "release_year"]
WARMUP_S = 2.0


# ----------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def taskset(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []


def thread_env(threads: int | None) -> dict[str, str]:
    """OMP_NUM_THREADS for the model's processes (server, bound); None: the library default."""
    return {} if threads is None else {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_self(args: list[str], cpu: str | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """This script in a fresh process; its last stdout line is the JSON result."""
    proc = subprocess.run([*taskset(cpu), sys.executable, __file__, *args], env={**os.environ, **ENV, **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_serving {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train(case: str, out: Path) -> Path:
    """A small run of the case's experiment through the real CLI; its run dir (with the export)."""
    run = out / f"{case}-run"
    if (run / "export" / "meta.json").exists() and (run / "DONE").exists():
        return run  # --out of an earlier invocation: the same run, served again
    cmd = [sys.executable, "-m", "trainer", *TRAIN[case], *QUIET, f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, cwd=out, env={**os.environ, **ENV}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_serving: training {case} failed:\n{proc.stdout[-3000:]}")
    return run


def machine() -> str:
    """CPU model, cores and the flags that matter for the forward pass."""
    model, flags = platform.processor() or "?", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
        flags = set(re.search(r"flags\s*:\s*(.+)", text).group(1).split())
    except (OSError, AttributeError):
        pass
    wanted = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{model}, {os.cpu_count()} cores visible, flags: {' '.join(wanted) or '-'}"


# ----------------------------------------------------------------------------- the bound (own process)
def bound(run: str, domain: str, seconds: float, instances_out: str) -> dict[str, Any]:
    """Instances for the HTTP cells (written to ``instances_out``) and the bare forward pass:
    calls/s of adapter.predict on 1 instance, instances/s on batches of 32 and 64."""
    from trainer.domains import serving_adapter

    export = Path(run) / "export"
    adapter = serving_adapter(domain)(export)
    instances = load_instances(domain, adapter)
    Path(instances_out).write_text(json.dumps(instances))
    out: dict[str, Any] = {"name": adapter.name_hint or json.loads((export / "meta.json").read_text()).get(
        "experiment", "")}
    for size in (1, 32, 64):
        batches = [[instances[(k * size + j) % len(instances)] for j in range(size)] for k in range(16)]
        for b in batches[:3]:
            adapter.predict(b)  # warm up
        lat, calls, start = [], 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            adapter.predict(batches[calls % len(batches)])
            lat.append(time.perf_counter() - t)
            calls += 1
        elapsed = time.perf_counter() - start
        out[f"b{size}"] = {"calls_per_s": calls / elapsed, "instances_per_s": calls * size / elapsed,
                           "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}
    return out


def load_instances(domain: str, adapter: Any) -> list[Any]:
    """MovieLens: 512 rows of the prepared test split; else the adapter's example instances."""
    if domain != "rec":
        return list(adapter.example_instances())
    import pyarrow.parquet as pq

    from dataio.datasets import ensure_dataset

    path = os.environ.get("LINGJIE_DATA_DIR")
    ensure_dataset("movielens-100k", path)
    base = Path(path) if path else Path.home() / ".cache" / "lingjie" / "datasets"
    table = pq.read_table(base / "movielens-100k" / "test.parquet", columns=ML_COLUMNS)
    return table.slice(0, 512).to_pylist()


# ----------------------------------------------------------------------------- the load generator (own process)
async def load(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    """C closed-loop clients on keep-alive connections; answers completed in the window count."""
    import aiohttp

    loop = asyncio.get_running_loop()
    start = loop.time() + WARMUP_S
    end = start + seconds
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession, k: int) -> None:
        nonlocal errors
        i = k
        while loop.time() < end:
            body = bodies[i % len(bodies)]
            i += concurrency
            sent = loop.time()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok = response.status == 200
            done = loop.time()
            if start <= done < end:
                if ok:
                    latencies.append(done - sent)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session, k) for k in range(concurrency)))
    return {"requests": len(latencies), "errors": errors, "req_per_s": len(latencies) / seconds,
            "p50_ms": pct(latencies, 50) * 1e3, "p95_ms": pct(latencies, 95) * 1e3,
            "p99_ms": pct(latencies, 99) * 1e3}


# ----------------------------------------------------------------------------- one server, its cells
def batch_stats(port: int) -> tuple[float, float]:
    """(sum, count) of the server's lingjie_serve_batch_size histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"lingjie_serve_batch_size_(sum|count)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m:
            values[m.group(1)] = values.get(m.group(1), 0.0) + float(m.group(3))
    return values.get("sum", 0.0), values.get("count", 0.0)


def serve_cells(run: Path, name: str, batching: bool, levels: list[int], seconds: float, bodies_file: Path,
                args: argparse.Namespace, log: Path) -> list[dict[str, Any]]:
    """Start a server, load it at each concurrency level in turn, stop it."""
    port, pin = free_port(), args.pin
    cmd = [*taskset("0" if pin else None), sys.executable, "-m", "trainer", "serve", str(run), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(args.workers), *([] if batching else ["--no-batching"])]
    with open(log, "w") as fh:
        server = subprocess.Popen(cmd, env={**os.environ, **ENV, **thread_env(args.threads)}, stdout=fh,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench_serving: the server did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/v1/models/{name}:predict"
        cells = []
        for c in levels:
            before = batch_stats(port)
            cell = run_self(["--_load", url, "--bodies", str(bodies_file), "--concurrency", str(c),
                             "--duration", str(seconds)], cpu="1" if pin else None)
            after = batch_stats(port)
            forwards = after[1] - before[1]
            cell.update(mode="batching" if batching else "no-batching", concurrency=c,
                        mean_batch=(after[0] - before[0]) / forwards if forwards else float("nan"))
            cells.append(cell)
            print(f"  {cell['mode']:>11} c={c:<3} {cell['req_per_s']:8.1f} req/s  p50 {cell['p50_ms']:7.1f} ms  "
                  f"p99 {cell['p99_ms']:7.1f} ms  batch {cell['mean_batch']:.1f}  errors {cell['errors']}", flush=True)
        return cells
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def bench_case(case: str, run: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The bound, then the batching and no-batching servers at every concurrency level."""
    instances_file = out / f"{case}-instances.json"
    b = run_self(["--_bound", str(run), "--domain", DOMAIN[case], "--duration", str(min(args.duration, 5.0)),
                  "--instances", str(instances_file)], cpu="0" if args.pin else None, env=thread_env(args.threads))
    print(f"{case}: bound {b['b1']['calls_per_s']:.0f} calls/s at 1 instance, "
          f"{b['b32']['instances_per_s']:.0f} instances/s at 32, {b['b64']['instances_per_s']:.0f} at 64", flush=True)
    instances = json.loads(instances_file.read_text())
    bodies_file = out / f"{case}-bodies.json"
    bodies_file.write_text(json.dumps([json.dumps({"instances": [inst]}) for inst in instances]))
    cells = []
    for batching in (True, False):
        cells += serve_cells(run, b["name"], batching, args.levels, args.duration, bodies_file, args,
                             out / f"{case}-server-{'b' if batching else 'nb'}.log")
    return {"case": case, "bound": b, "cells": cells}


# ----------------------------------------------------------------------------- report
def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    placement = "server pinned to CPU 0, client to CPU 1" if args.pin else "server and client share all cores"
    threads = f"OMP_NUM_THREADS={args.threads}" if args.threads else "library default threads"
    lines = [f"machine: {machine()}", f"placement: {placement}; server --workers {args.workers}, {threads}; "
             f"{args.duration:g} s per cell after {WARMUP_S:g} s warm-up", ""]
    for r in results:
        b = r["bound"]
        lines += [f"### {r['case']} ({b['name']})", "",
                  "| side | concurrency | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | mean batch | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in r["cells"]:
            lines.append(f"| {c['mode']} | {c['concurrency']} | {c['req_per_s']:,.0f} | {c['p50_ms']:.1f} | "
                         f"{c['p95_ms']:.1f} | {c['p99_ms']:.1f} | {c['p99_ms'] / c['p50_ms']:.1f} | "
                         f"{c['mean_batch']:.1f} | {c['errors']} |")
        for size in (1, 32, 64):
            x = b[f"b{size}"]
            lines.append(f"| bound: predict({size}) in process | - | {x['instances_per_s']:,.0f} inst/s | "
                         f"{x['p50_ms']:.2f} | - | {x['p99_ms']:.2f} | - | {size} | - |")
        lines += ["", "| concurrency | batching req/s | no-batching req/s | batching / no-batching "
                  "| batching p99/p50 |", "|---:|---:|---:|---:|---:|"]
        by = {(c["mode"], c["concurrency"]): c for c in r["cells"]}
        for level in args.levels:
            on, off = by[("batching", level)], by[("no-batching", level)]
            lines.append(f"| {level} | {on['req_per_s']:,.0f} | {off['req_per_s']:,.0f} | "
                         f"{on['req_per_s'] / off['req_per_s']:.2f}x | {on['p99_ms'] / on['p50_ms']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="movielens", help="comma list of movielens, digits, chnsenti")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per cell (after the warm-up)")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--run", action="append", default=[], help="CASE=RUN_DIR: serve this run instead of training")
    p.add_argument("--pin", action="store_true", help="server on CPU 0, load generator on CPU 1 (taskset)")
    p.add_argument("--workers", type=int, default=2, help="the server's --workers")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the server and the bound (default: the "
                                                "library's, one per core)")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--out", help="keep the trained runs and server logs here (reused when run again); "
                                 "default: a temp dir")
    # internal: the sub-processes
    p.add_argument("--_bound", help=argparse.SUPPRESS)
    p.add_argument("--_load", help=argparse.SUPPRESS)
    p.add_argument("--domain", help=argparse.SUPPRESS)
    p.add_argument("--instances", help=argparse.SUPPRESS)
    p.add_argument("--bodies", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._bound:
        print(json.dumps(bound(args._bound, args.domain, args.duration, args.instances)))
        return
    if args._load:
        bodies = [b.encode() for b in json.loads(Path(args.bodies).read_text())]
        print(json.dumps(asyncio.run(load(args._load, bodies, int(args.concurrency), args.duration))))
        return
    args.levels = [int(c) for c in args.concurrency.split(",")]
    given = dict(item.split("=", 1) for item in args.run)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for case in args.cases.split(","):
            run = Path(given[case]) if case in given else train(case, out)
            results.append(bench_case(case, run, args, out))
        text = report(results, args)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
