"""selected_features.yaml (a self-contained snippet that trains) and the rankings' bar chart."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automl.features.snippet import train_command, write_snippet

SNIPPET = "selected_features"


def combined_order(gates: dict[str, float], perm: dict[str, float]) -> list[str]:
    """Features by the mean of their two ranks (ties: higher permutation drop first)."""
    names = list(perm)
    g_rank = {n: r for r, n in enumerate(sorted(names, key=lambda n: -gates.get(n, 0.0)))}
    p_rank = {n: r for r, n in enumerate(sorted(names, key=lambda n: -perm[n]))}
    return sorted(names, key=lambda n: (g_rank[n] + p_rank[n], -perm[n]))


def restricted_groups(groups: dict[str, list[str]], selected: list[str]) -> dict[str, list[str]]:
    keep = set(selected)
    out = {}
    for g, names in groups.items():
        kept = [n for n in names if n in keep]
        out[g] = kept or [min(names, key=selected.index) if any(n in keep for n in names) else names[0]]
    return out


def base_overrides(overrides: list[str]) -> list[str]:
    """The user's overrides without a previous snippet include (the new one is self-contained)."""
    return [o for o in overrides if not o.startswith(("hydra.searchpath", "+automl="))]


def write_selected(out: Path, cfg: dict[str, Any], overrides: list[str], selected: list[str],
                   header: str) -> tuple[Path, str]:
    groups = restricted_groups(cfg["model"]["feature_groups"], selected)
    used = {n for names in groups.values() for n in names}
    body = {
        "data": {"train_path": cfg["data"]["train_path"], "eval_path": cfg["data"]["eval_path"]},
        "features": {n: cfg["features"][n] for n in cfg["features"] if n in used},
        "model": {"feature_groups": groups},
    }
    command = train_command(base_overrides(overrides), out, SNIPPET)
    path = write_snippet(out, SNIPPET, body, header + f"\ntrain with: {command}")
    return path, command


def plot_rankings(path: Path, gates: dict[str, float], perm: dict[str, float], selected: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(perm)
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3, 0.35 * len(names) + 1)))
    for ax, scores, title in ((axes[0], gates, "variational dropout gate: P(open)"),
                              (axes[1], perm, "permutation importance: eval AUC drop")):
        order = sorted(names, key=lambda n: scores.get(n, 0.0))
        vals = np.array([scores.get(n, 0.0) for n in order])
        ax.barh(order, vals, color=["tab:blue" if n in selected else "tab:gray" for n in order])
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("feature rankings (blue: selected)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
