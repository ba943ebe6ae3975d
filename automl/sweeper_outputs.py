"""What a sweep leaves in its directory: trials.csv, best_config.yaml, plots, a summary table."""
from __future__ import annotations

import logging
import math
import shlex
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("lingjie.automl")


def write_outputs(study: Any, sweep: Any) -> dict[str, Path]:
    s = sweep.s
    out: dict[str, Path] = {}
    out["trials.csv"] = _trials_csv(study, s.sweep_dir / "trials.csv")
    best = _best_trials(study, sweep.multi, getattr(s, "best_by", "mean"))
    if best:
        out["best_config.yaml"] = _best_config(study, sweep, best, s.sweep_dir / "best_config.yaml")
    if s.plots:
        out.update(_plots(study, sweep))
    print(summary_table(study, sweep, best), flush=True)
    if best and not sweep.multi:
        cmp = vs_default(study, best[0])
        if cmp:
            se = cmp.get("gain_standard_error")
            print(f"[sweep] best (trial {best[0].number}) vs the default config (trial {cmp['trial']}): "
                  f"{cmp['gain']:+.5f} {s.optimize_metric[0]}"
                  + (f" (paired over {len(cmp['gain_per_seed'])} seeds, standard error {se:.5f}"
                     + ("; within noise" if abs(cmp['gain']) < 2 * se else "") + ")" if se is not None else ""),
                  flush=True)
    for name, path in out.items():
        print(f"[sweep] wrote {path}", flush=True)
    return out


def _trials_csv(study: Any, path: Path) -> Path:
    df = study.trials_dataframe(attrs=("number", "value", "values", "state", "params", "duration",
                                       "user_attrs", "intermediate_values"), multi_index=False)
    df.to_csv(path, index=False)
    return path


def _best_trials(study: Any, multi: bool, best_by: str = "mean") -> list[Any]:
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return []
    if multi:  # the Pareto front, best first by the first objective
        sign = -1 if study.directions[0].name == "MAXIMIZE" else 1
        return sorted(study.best_trials, key=lambda t: sign * t.values[0])
    if best_by == "lower_bound":
        sign = 1 if study.direction.name == "MAXIMIZE" else -1
        return [max(complete, key=lambda t: (conservative_value(t, sign), -t.number))]
    return [study.best_trial]


def seed_stats(trial: Any) -> tuple[float, float, int]:
    """(mean, standard error of the mean, n) of a trial's per-seed objective values (`seed_values`);
    the standard error is 0.0 for a single run."""
    values = [float(v) for v in (trial.user_attrs.get("seed_values") or {}).values()] or [float(trial.value)]
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0, n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n), n


def conservative_value(trial: Any, sign: int = 1) -> float:
    """A trial's objective one standard error towards "worse" (sign 1: maximize): with `seeds`, a
    trial whose seeds disagree ranks below one that scores the same mean consistently."""
    mean, se, _ = seed_stats(trial)
    return sign * mean - se


def vs_default(study: Any, best: Any) -> dict[str, Any] | None:
    """The best trial against the default config's trial (enqueue_default), seed by seed: the
    paired gains, their mean and its standard error; None without a completed default trial."""
    from optuna.trial import TrialState

    default = next((t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE
                    and t.user_attrs.get("source") == "default config"), None)
    if default is None or default.number == best.number:
        return None
    a, b = best.user_attrs.get("seed_values") or {}, default.user_attrs.get("seed_values") or {}
    common = [k for k in a if k in b]
    gains = {k: float(a[k]) - float(b[k]) for k in common} if common else {"-": float(best.value) - float(default.value)}
    n = len(gains)
    mean = sum(gains.values()) / n
    se = math.sqrt(sum((g - mean) ** 2 for g in gains.values()) / (n - 1) / n) if n > 1 else None
    out: dict[str, Any] = {"trial": default.number, "objective": float(default.value), "gain": mean}
    if common:
        out["gain_per_seed"] = gains
    if se is not None:
        out["gain_standard_error"] = se
    return out


def rerun_command(overrides: list[str]) -> str:
    return "python -m trainer " + " ".join(shlex.quote(o) for o in overrides)


def _best_config(study: Any, sweep: Any, best: list[Any], path: Path) -> Path:
    import yaml

    t = best[0]
    overrides = t.user_attrs.get("overrides") or [*sweep.fixed, *sweep.trial_overrides(t.params)]
    doc = {
        "trial": t.number,
        "objectives": dict(zip(sweep.s.optimize_metric, t.values)),
        "directions": list(sweep.s.direction),
        "params": dict(t.params),
        "overrides": list(overrides),
        "command": rerun_command(overrides),
        "run_dir": t.user_attrs.get("run_dir"),
    }
    if t.user_attrs.get("seed_values"):  # the objective is the mean over these runs; `command` re-runs the first
        doc["seed_values"] = dict(t.user_attrs["seed_values"])
    if not sweep.multi:
        doc["selected_by"] = sweep.s.best_by
        if sweep.s.best_by == "lower_bound":
            mean, se, n = seed_stats(t)
            doc["lower_bound"] = mean - se if sweep.s.direction[0] == "maximize" else mean + se
        cmp = vs_default(study, t)
        if cmp:
            doc["vs_default"] = cmp
    if sweep.s.average_last_epochs > 1:
        doc["average_last_epochs"] = sweep.s.average_last_epochs
    final = t.user_attrs.get("final_overrides")
    if final:  # tuned with tune_overrides (a validation split): retrain without them, score on test
        doc["final_overrides"] = list(final)
        doc["final_command"] = rerun_command(final)
    if sweep.multi:
        doc["pareto_front"] = [{"trial": p.number, "objectives": dict(zip(sweep.s.optimize_metric, p.values)),
                                "params": dict(p.params)} for p in best]
    resolved = Path(t.user_attrs.get("run_dir", "")) / "config.yaml"
    header = (f"# Best trial of study '{sweep.s.study_name}' ({'Pareto front, best first by ' + sweep.s.optimize_metric[0] if sweep.multi else 'best value'}).\n"
              + (f"# Its objective is the mean over seeds {sweep.s.seeds} (seed_values); `command` re-runs the "
                 f"first seed's run.\n" if doc.get("seed_values") else "")
              + f"# Re-run it as-is (from the directory the sweep ran in):\n#   {doc['command']}\n"
              f"# The full resolved config it ran with: {resolved}\n"
              + (f"# Tuned with {sweep.s.tune_overrides}: retrain without them and score on the test split:\n"
                 f"#   {doc['final_command']}\n" if final else ""))
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return path


def _plots(study: Any, sweep: Any) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as vis

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    out: dict[str, Path] = {}
    metric = sweep.s.optimize_metric
    jobs: list[tuple[str, Any]] = []
    if complete:
        if sweep.multi:
            jobs.append(("optimization_history.png",
                         lambda: vis.plot_optimization_history(study, target=lambda t: t.values[0], target_name=metric[0])))
            if len(metric) in (2, 3):
                jobs.append(("pareto_front.png", lambda: vis.plot_pareto_front(study, target_names=metric)))
        else:
            jobs.append(("optimization_history.png", lambda: vis.plot_optimization_history(study, target_name=metric[0])))
    if len(complete) >= 2:
        target = (lambda t: t.values[0]) if sweep.multi else None
        jobs.append(("param_importances.png",
                     lambda: vis.plot_param_importances(study, target=target, target_name=metric[0])))
    for name, make in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = make()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            fig.savefig(sweep.s.sweep_dir / name, dpi=100)
            plt.close(fig)
            out[name] = sweep.s.sweep_dir / name
        except Exception as exc:  # a plot must not fail the sweep (e.g. importances of a constant space)
            log.warning("plot %s skipped: %s", name, exc)
            print(f"[sweep] plot {name} skipped: {exc}", flush=True)
    return out


def summary_table(study: Any, sweep: Any, best: list[Any], top: int = 10) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {st.name.lower(): sum(t.state == st for t in trials) for st in
              (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    metric = sweep.s.optimize_metric
    signs = [-1 if d.name == "MAXIMIZE" else 1 for d in study.directions]

    def key(t: Any) -> tuple:
        if t.state == TrialState.COMPLETE:
            return (0, *[s * v for s, v in zip(signs, t.values)])
        if t.state == TrialState.PRUNED:
            last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else 0.0
            return (1, signs[0] * last)
        return (2, t.number)

    rows = sorted(trials, key=key)[:top]
    best_numbers = {t.number for t in best}
    header = ["trial", "state", *metric, "epochs", "steps", "params"]
    table = [header]
    for t in rows:
        if t.state == TrialState.COMPLETE:
            vals = [f"{v:.5f}" for v in t.values]
        elif t.state == TrialState.PRUNED and t.intermediate_values:
            vals = [f"({t.intermediate_values[max(t.intermediate_values)]:.5f})"] + ["-"] * (len(metric) - 1)
        else:
            vals = ["-"] * len(metric)
        params = " ".join(f"{k}={v}" for k, v in t.params.items())
        if t.user_attrs.get("source"):
            params = f"({t.user_attrs['source']}) {params}"
        if t.state == TrialState.FAIL:
            params += f"  error: {str(t.user_attrs.get('error', ''))[:80]}"
        table.append([f"{t.number}{'*' if t.number in best_numbers else ''}", t.state.name.lower(), *vals,
                      str(t.user_attrs.get("epochs", "-")), str(t.user_attrs.get("steps", "-")), params])
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in table]
    epochs = sum(int(t.user_attrs.get("epochs") or 0) for t in trials)
    steps = sum(int(t.user_attrs.get("steps") or 0) for t in trials)
    title = (f"[sweep] study '{sweep.s.study_name}': {len(trials)} trials ("
             + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + f"), {epochs} trial epochs, {steps} trial steps; "
             + ("* = Pareto front" if sweep.multi else "* = best") + f"; top {min(top, len(trials))}:")
    return "\n".join([title, *lines])
