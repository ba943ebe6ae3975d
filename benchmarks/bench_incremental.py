"""Continuous training on MovieLens-100k-days (issue 20): incremental vs scratch vs once.

    .venv/bin/python benchmarks/bench_incremental.py [--work DIR] [--no-results]

The dataset ``movielens-100k-days`` is MovieLens-100k in time order cut into 8 equal-count days
(12,500 ratings each). For every day i >= 2 that has a next day, the next-day AUC (train on
days up to i, evaluate on day i + 1) of three strategies, all with the shipped defaults of
``+experiment=movielens_deepfm_days`` (5 epochs a run, the same seed; only the progress bar
and the plots are off):

* incremental: ``lingjie incremental`` over all days: day i warm-starts from day i - 1's run
  (``trainer.init_from``, vocabulary rows remapped by value) and trains on day i only;
* scratch: a fresh run every day on all days 1..i (a directory of links to their files);
* once: one run on days 1..2, never retrained; the same model evaluated on every later day
  (``trainer.mode=evaluate``).

Wall time: seconds per day through the real CLI, process start (Python, torch, Hydra) and the
export included, the same for every strategy; "once" trains only on day 2 (later days cost an
evaluation, not counted). Export size: the incremental strategy is run a second time with one
delta export per day (``trainer.export.delta_every_steps`` = a day's steps): the bytes of the
day's delta (everything that changed since the warm-started start of the day) next to the full
export directory. This machine's 2 cores are shared with other jobs: wall times are noisy; the
strategies of a day run back to back. The AUCs are deterministic (same seed, same data).

Prints the table and, unless ``--no-results``, replaces the section "## Continuous training
(issue 20)" of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "+experiment=movielens_deepfm_days"
QUIET = ["trainer.progress_bar=false", "trainer.plots=false"]
SECTION = "## Continuous training (issue 20)"


def cli(args: list[str], log: Path) -> float:
    """Run ``python -m trainer ARGS`` (output into ``log``); its wall time. Raises on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(args)}\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def final(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["final"]


def incremental(work: Path, dates: list[str]) -> dict[str, dict]:
    """The driver over every day; per trained day: next-day metrics, wall time."""
    out = work / "incremental"
    cli(["incremental", "--out", str(out), EXPERIMENT, *QUIET, f"data.dates=[{','.join(dates)}]"],
        work / "incremental.log")
    days = json.loads((out / "incremental.json").read_text())["days"]
    starts = []
    for d in days:
        info = json.loads((Path(d["run_dir"]) / "run_info.json").read_text())
        starts.append(d["wall_s"] - info["duration_s"])
    print(f"incremental: process start + driver per day {statistics.mean(starts):.1f} s "
          f"(wall - run_info duration_s, mean of {len(starts)})", flush=True)
    return {d["date"]: {"auc": d["metrics"].get("eval/auc"), "gauc": d["metrics"].get("eval/gauc"),
                        "wall_s": d["wall_s"], "version": d["version"], "start_s": s, "run": d["run_dir"]}
            for d, s in zip(days, starts)}


def delta_sizes(work: Path, dates: list[str], rows: dict[str, int]) -> dict[str, dict]:
    """The incremental strategy again, now with one delta export per day
    (trainer.export.delta_every_steps = the day's steps): per day, the bytes of the delta
    (changes since the day's warm-started start) and of the full export directory."""
    from trainer.compose import compose_config

    cfg = compose_config([EXPERIMENT])
    steps = -(-rows[dates[0]] // cfg["data"]["batch_size"]) * cfg["trainer"]["epochs"]
    out = work / "incremental-deltas"
    cli(["incremental", "--out", str(out), EXPERIMENT, *QUIET, f"data.dates=[{','.join(dates)}]",
         f"trainer.export.delta_every_steps={steps}"], work / "incremental-deltas.log")
    sizes = {}
    for d in dates:
        found = re.search(r"delta export \S+ \(base \S+\): (\d+) bytes", (out / d / "train.log").read_text())
        full = sum(p.stat().st_size for p in (out / d / "export").rglob("*") if p.is_file())
        sizes[d] = {"delta": int(found.group(1)) if found else None, "full": full}
    return sizes


def upto(days_dir: Path, work: Path, dates: list[str]) -> Path:
    """A directory of links to the files of ``dates`` (the scratch run's training data)."""
    link_dir = work / f"upto-{dates[-1]}"
    link_dir.mkdir(exist_ok=True)
    for d in dates:
        link = link_dir / f"dt={d}.parquet"
        if not link.exists():
            link.symlink_to(days_dir / f"dt={d}" / "part-0.parquet")
    return link_dir


def scratch(days_dir: Path, work: Path, dates: list[str], i: int) -> dict:
    run = work / f"scratch-{dates[i]}"
    wall = cli([EXPERIMENT, *QUIET, f"data.train_path={upto(days_dir, work, dates[:i + 1])}",
                f"data.date={dates[i]}", f"data.eval_date={dates[i + 1]}", f"hydra.run.dir={run}"],
               work / f"scratch-{dates[i]}.log")
    m = final(run)
    return {"auc": m["eval/auc"], "gauc": m["eval/gauc"], "wall_s": wall, "run": str(run)}


def once(days_dir: Path, work: Path, dates: list[str], i: int) -> dict:
    """Day index 1 (day 2): train on days 1..2; later days: evaluate that run on day i + 1."""
    if i == 1:
        return scratch(days_dir, work, dates, 1)
    run = work / f"once-eval-{dates[i + 1]}"
    cli([EXPERIMENT, *QUIET, "trainer.mode=evaluate", f"trainer.evaluate.checkpoint={work / f'scratch-{dates[1]}'}",
         f"data.eval_date={dates[i + 1]}", f"hydra.run.dir={run}"], work / f"once-{dates[i + 1]}.log")
    m = final(run)
    return {"auc": m["eval/auc"], "gauc": m["eval/gauc"], "wall_s": 0.0}


def epoch_curve(runs: list[str]) -> list[float]:
    """Mean next-day AUC after each epoch over ``runs`` (their metrics.json history)."""
    histories = [json.loads((Path(r) / "metrics.json").read_text())["history"] for r in runs]
    return [statistics.mean(h[e]["eval/auc"] for h in histories) for e in range(min(map(len, histories)))]


def dropped_rows(runs: list[str], table: str = "embedding.user_id") -> float:
    """Mean share of the previous day's ``table`` rows a warm start dropped (ids absent today)."""
    shares = []
    for r in runs:
        rows = json.loads((Path(r) / "metrics.json").read_text())["init_from"]["tables"][table]
        shares.append(rows["dropped"] / max(1, rows["dropped"] + rows["remapped by value"]))
    return statistics.mean(shares)


def diagnostics(dates: list[str], inc: dict, scr: dict) -> str:
    """What the defaults leave on the table: next-day AUC after each epoch (the shipped 5 are
    trained either way; these are the same runs' per-epoch evaluations, not tuned runs)."""
    days = sorted(scr)
    a = epoch_curve([inc[dates[i]]["run"] for i in days])
    b = epoch_curve([scr[i]["run"] for i in days])
    rows = ["| mean next-day AUC after epoch | " + " | ".join(str(e + 1) for e in range(len(a))) + " |",
            "|---" * (len(a) + 1) + "|",
            "| incremental | " + " | ".join(f"{x:.4f}" for x in a) + " |",
            "| scratch | " + " | ".join(f"{x:.4f}" for x in b) + " |"]
    share = dropped_rows([inc[dates[i]]["run"] for i in days])
    return "\n".join(rows) + (f"\n\nWarm starts dropped on average {share:.0%} of the previous day's user_id "
                               "rows (trainer.features_from as shipped: extend keeps every value; fit drops the values "
                               "absent from the new day).")


def cpu_line() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags = re.search(r"flags\s*:\s*(.*)", text)
    keep = [f for f in (flags.group(1).split() if flags else []) if f.startswith(("avx", "amx", "fma"))]
    return f"{model.group(1) if model else platform.processor()}, {os.cpu_count()} cores, flags {' '.join(keep)}"


def table(dates: list[str], inc: dict, scr: dict, onc: dict, sizes: dict) -> str:
    rows = ["| day (train) | next day (eval) | AUC incremental | AUC scratch | AUC once | "
            "s incremental | s scratch | s once | incremental delta / full export KiB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for i in sorted(scr):
        a, b, c, z = inc[dates[i]], scr[i], onc[i], sizes[dates[i]]
        delta = f"{z['delta'] / 1024:.0f}" if z["delta"] is not None else "-"
        rows.append(f"| {i + 1} {dates[i]} | {dates[i + 1]} | {a['auc']:.4f} | {b['auc']:.4f} | {c['auc']:.4f} | "
                    f"{a['wall_s']:.1f} | {b['wall_s']:.1f} | {c['wall_s']:.1f} | {delta} / {z['full'] / 1024:.0f} |")

    def mean(side: dict, key: str, by_date: bool = False) -> float:
        return statistics.mean((side[dates[i]] if by_date else side[i])[key] for i in scr)
    rows.append(f"| **mean** | | **{mean(inc, 'auc', True):.4f}** | **{mean(scr, 'auc'):.4f}** | "
                f"**{mean(onc, 'auc'):.4f}** | {mean(inc, 'wall_s', True):.1f} | {mean(scr, 'wall_s'):.1f} | "
                f"{mean(onc, 'wall_s'):.1f} | {_ratio(sizes, [dates[i] for i in scr])} |")
    return "\n".join(rows)


def _ratio(sizes: dict, days: list[str]) -> str:
    known = [sizes[d]["delta"] / sizes[d]["full"] for d in days if sizes[d]["delta"] is not None]
    return f"delta = {statistics.mean(known):.0%} of full" if known else "-"


def write_results(text: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    body = path.read_text()
    start = body.find(SECTION)
    if start < 0:
        body = body.rstrip() + "\n\n" + text + "\n"
    else:
        end = body.find("\n## ", start + len(SECTION))
        body = body[:start] + text + ("\n" + body[end + 1:] if end >= 0 else "\n")
    path.write_text(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from dataio.datasets import ensure_dataset
    from dataio.datasets.movielens import DAY_DATES

    days_dir = ensure_dataset("movielens-100k-days", show_progress=False)
    dates = list(DAY_DATES)
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench-incremental-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    inc = incremental(work, dates)
    scr, onc = {}, {}
    for i in range(1, len(dates) - 1):  # day 2 .. the day before the last (each has a next day)
        scr[i] = scratch(days_dir, work, dates, i)
        onc[i] = once(days_dir, work, dates, i)
        print(f"day {i + 1} {dates[i]} -> {dates[i + 1]}: incremental {inc[dates[i]]['auc']:.4f}, scratch "
              f"{scr[i]['auc']:.4f}, once {onc[i]['auc']:.4f}", flush=True)
    sizes = delta_sizes(work, dates, json.loads((days_dir / "meta.json").read_text())["rows"])
    tab = table(dates, inc, scr, onc, sizes)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    text = (f"{SECTION}\n\n    .venv/bin/python benchmarks/bench_incremental.py\n\n"
            f"{when}; {cpu_line()}; torch {_torch_version()}; load average at the end {load:.1f} "
            f"(shared machine); total {time.perf_counter() - started:.0f} s.\n\n{tab}\n\n"
            f"{diagnostics(dates, inc, scr)}\n")
    print("\n" + text)
    (work / "results.json").write_text(json.dumps({"incremental": inc, "scratch": scr, "once": onc, "sizes": sizes},
                                                  indent=2))
    if not args.no_results:
        write_results(text)


def _torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


if __name__ == "__main__":
    main()
