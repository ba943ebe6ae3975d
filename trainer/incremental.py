"""``lingjie incremental +experiment=NAME [overrides] [--out DIR]``: train day by day.

For each day ``d_i`` of ``data.dates``, in order, one ordinary training run (the real CLI, one
process per day) with

    data.date=d_i  data.eval_date=d_{i+1}      train on the day, evaluate on the next day
    trainer.init_from=<day d_{i-1}'s run>       warm start (day 1: the user's trainer.init_from, else scratch)
    trainer.export.repository=REPO              publish the export as the next serving version
    hydra.run.dir=<out>/<d_i>                   each day's run directory is named by its date

The last day has no next day: when the eval path depends on ``${data.eval_date}`` it trains
without evaluation (its model is the one served; a score on its own training day would flatter
it); an eval path that names no date (a fixed hold-out) is kept. ``<out>`` defaults to
``<paths.output_root>/<experiment_name>/incremental``; REPO to ``trainer.export.repository``,
else ``<out>/repository`` (``lingjie serve REPO`` follows the newest day).

After every day ``<out>/incremental.json`` is rewritten (atomically): per day its run dir, the
next-day metrics (``eval/*``), wall time and the published version. Re-running the same
command skips the days already DONE and continues the first unfinished one from its latest
checkpoint (or starts it again when it has none); a day that fails stops the driver with one
line naming the day and its run directory.

Why a process per day rather than the job API in this process: each day gets its own Hydra log
(``train.log``), ``run_info.json`` with its real command line and a crash isolated to its run,
for a start-up cost of about 2 s a day (Python, torch, Hydra imports) -- small next to a day's
training and export (benchmarks/RESULTS.md, continuous training).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_json
from lingjie.errors import ConfigError, LingjieError

SUMMARY = "incremental.json"
DATE_MARK, EVAL_MARK = "__lingjie_date__", "__lingjie_eval_date__"
DRIVER_KEYS = ("data.date", "data.eval_date", "hydra.run.dir", "trainer.resume")  # the driver sets these
OWN_KEYS = ("trainer.init_from", "trainer.export.repository")  # read once, then set per day


@dataclass
class Plan:
    """What the driver runs: the user's overrides, the days, where everything goes."""

    overrides: list[str]
    dates: list[str]
    out: Path
    repository: str
    first_init: str | None
    last_eval_path_null: bool
    config_dir: str | None = None
    days: list[dict[str, Any]] = field(default_factory=list)


def parse_args(argv: list[str]) -> tuple[list[str], Path | None, str | None]:
    """(Hydra overrides, --out, --config-dir) of ``lingjie incremental ARGS``."""
    parser = argparse.ArgumentParser(prog="lingjie incremental", description="Train every day of data.dates in order: each day "
                                     "warm-starts from the day before, evaluates on the next day and publishes its "
                                     "export to trainer.export.repository.")
    parser.add_argument("--out", type=Path, help="where the day runs and incremental.json go "
                        "(default <paths.output_root>/<experiment_name>/incremental)")
    parser.add_argument("--config-dir", "-cd", help="an extra config directory (as for lingjie)")
    parser.add_argument("overrides", nargs="*", help="+experiment=NAME and other Hydra overrides")
    args = parser.parse_args(argv)
    for item in args.overrides:
        if item in ("-m", "--multirun") or item.startswith("-"):
            raise ConfigError("", f"lingjie incremental does not take {item} (a sweep trains each day's "
                              "config; run it on one day with lingjie)")
        key = item.lstrip("+~").split("=", 1)[0]
        if key in DRIVER_KEYS:
            raise ConfigError(key, "lingjie incremental sets it for every day: drop it (pick the days with "
                              "data.dates=[...], the run directories with --out)")
    return args.overrides, args.out, args.config_dir


def plan(argv: list[str]) -> Plan:
    """Compose the config once (no torch import) and decide the days, directories, repository."""
    from trainer.compose import compose_config

    overrides, out, config_dir = parse_args(argv)
    cfg = compose_config([*overrides, f"data.date={DATE_MARK}", f"data.eval_date={EVAL_MARK}"], config_dir)
    data, trainer = cfg.get("data") or {}, cfg.get("trainer") or {}
    dates = [str(d) for d in data.get("dates") or []]
    if not dates:
        raise ConfigError("data.dates", "no days to train on: list them, e.g. data.dates=[2024-01-01,2024-01-02]")
    if len(set(dates)) != len(dates):
        raise ConfigError("data.dates", f"a day is listed twice: {dates}")
    bad = [d for d in dates if not re.fullmatch(r"[A-Za-z0-9_.:-]+", d)]
    if bad:
        raise ConfigError("data.dates", f"{bad[0]!r} cannot name a run directory: use letters, digits, - _ . :")
    if DATE_MARK not in str(data.get("train_path") or ""):
        raise ConfigError("data.train_path", "does not depend on ${data.date}: every day would train on the "
                          "same data; use a date-partitioned path such as .../dt=${data.date}/")
    if trainer.get("backend") == "tf":
        raise ConfigError("trainer.backend", "lingjie incremental warm-starts each day from the day before "
                          "(trainer.init_from), which loads torch checkpoints: use trainer.backend=torch")
    if out is None:
        out = Path(cfg["paths"]["output_root"]) / str(cfg.get("experiment_name")) / "incremental"
    out = out.expanduser().resolve()
    repository = str(trainer.get("export", {}).get("repository") or out / "repository")
    own = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in OWN_KEYS]  # set per day below
    return Plan(own, dates, out, repository, trainer.get("init_from"),
                EVAL_MARK in str(data.get("eval_path") or ""), config_dir)


def quote(key: str, value: str) -> str:
    """One Hydra override ``key=value``, the value quoted when it holds characters the override
    grammar would read (spaces, commas, brackets, ...)."""
    if re.fullmatch(r"[A-Za-z0-9_./:@-]+", value):
        return f"{key}={value}"
    return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def day_overrides(p: Plan, i: int) -> list[str]:
    """The overrides of day ``i`` (0-based) after the user's own."""
    date, run_dir = p.dates[i], p.out / p.dates[i]
    extra = [quote("data.date", date)]
    if i + 1 < len(p.dates):
        extra.append(quote("data.eval_date", p.dates[i + 1]))
    elif p.last_eval_path_null:
        extra += ["data.eval_date=null", "data.eval_path=null"]
    init = str(p.out / p.dates[i - 1]) if i > 0 else p.first_init
    if init:
        extra.append(quote("trainer.init_from", str(init)))
    extra += [quote("trainer.export.repository", p.repository), quote("hydra.run.dir", str(run_dir))]
    if (run_dir / "config.yaml").exists() and _has_checkpoint(run_dir):
        extra.append(quote("trainer.resume", str(run_dir)))  # continue the unfinished day
    return [*p.overrides, *extra]


def _has_checkpoint(run_dir: Path) -> bool:
    from trainer.run_dir import RunDir

    return RunDir(run_dir).latest_checkpoint() is not None


def prepare_day_dir(run_dir: Path) -> None:
    """An unfinished day without a checkpoint starts again from nothing: its directory (a
    failed start) is removed, unless a live process holds it."""
    import shutil

    from trainer.run_dir import RunDir, refuse_if_in_use

    if not run_dir.exists() or RunDir(run_dir).is_done() or _has_checkpoint(run_dir):
        return
    refuse_if_in_use(run_dir, "hydra.run.dir")
    shutil.rmtree(run_dir)


def day_record(p: Plan, i: int, status: str, wall_s: float | None) -> dict[str, Any]:
    """incremental.json's entry for day ``i``: read back from its run directory."""
    run_dir = p.out / p.dates[i]
    metrics = _read_json(run_dir / "metrics.json") or {}
    final = metrics.get("final") or {}
    published = _read_json(run_dir / "published.json") or {}
    if wall_s is None:  # a day done by an earlier driver: its own record, else the run's duration
        wall_s = (_read_json(run_dir / "run_info.json") or {}).get("duration_s")
    return {
        "date": p.dates[i],
        "eval_date": p.dates[i + 1] if i + 1 < len(p.dates) else None,
        "run_dir": str(run_dir),
        "status": status,
        "init_from": str(p.out / p.dates[i - 1]) if i > 0 else p.first_init,
        "metrics": {k: v for k, v in final.items() if k.startswith("eval/")},
        "wall_s": round(wall_s, 2) if isinstance(wall_s, (int, float)) else None,
        "version": published.get("version"),
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def write_summary(p: Plan, finished: bool) -> None:
    atomic_write_json(p.out / SUMMARY, {"dates": p.dates, "repository": p.repository, "out": str(p.out),
                                        "days": p.days, "finished": finished})


def progress_line(p: Plan, i: int, rec: dict[str, Any], skipped: bool) -> str:
    m = rec["metrics"]
    score = " ".join(f"{k.split('/', 1)[1]}={m[k]:.4f}" for k in ("eval/auc", "eval/gauc", "eval/logloss") if k in m)
    on = f"next day {rec['eval_date']}: {score or 'no eval metrics'}" if rec["eval_date"] else "last day (no next day)"
    took = "done before, skipped" if skipped else f"{rec['wall_s']:.1f}s"
    version = f"version {rec['version']}" if rec["version"] is not None else "not published"
    return f"day {i + 1}/{len(p.dates)} {rec['date']}: {on}; {took}; {version}; {rec['run_dir']}"


def run_day(p: Plan, i: int) -> dict[str, Any]:
    """Train day ``i`` in a child process (the real CLI); its record; LingjieError when it fails."""
    run_dir = p.out / p.dates[i]
    prepare_day_dir(run_dir)
    cmd = [sys.executable, "-m", "trainer", *(["--config-dir", p.config_dir] if p.config_dir else []),
           *day_overrides(p, i)]
    start = time.perf_counter()
    code = subprocess.run(cmd, env=dict(os.environ)).returncode
    wall = time.perf_counter() - start
    if code != 0 or not (run_dir / "DONE").exists():
        p.days.append(day_record(p, i, "failed", wall))
        write_summary(p, False)
        raise LingjieError(f"day {p.dates[i]} ({i + 1}/{len(p.dates)}) failed (exit status {code}); its run "
                           f"directory: {run_dir} (train.log there); fix it and run the same command again "
                           "to continue from this day")
    return day_record(p, i, "done", wall)


def run(argv: list[str]) -> Path:
    """The driver: every day in order; returns ``<out>/incremental.json``."""
    p = plan(argv)
    p.out.mkdir(parents=True, exist_ok=True)
    before = {d.get("date"): d for d in (_read_json(p.out / SUMMARY) or {}).get("days", [])
              if isinstance(d, dict) and d.get("status") == "done"}
    print(f"incremental: {len(p.dates)} days {p.dates[0]} .. {p.dates[-1]} into {p.out}; "
          f"publishing to {p.repository}", flush=True)
    for i, date in enumerate(p.dates):
        skipped = (p.out / date / "DONE").exists()
        if skipped:
            rec = before.get(date) or day_record(p, i, "done", None)
        else:
            rec = run_day(p, i)
        p.days.append(rec)
        write_summary(p, i == len(p.dates) - 1)
        print(progress_line(p, i, rec, skipped), flush=True)
    return p.out / SUMMARY
