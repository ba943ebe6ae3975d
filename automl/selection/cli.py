"""`python -m automl select +experiment=NAME [overrides] [--top-k K] [--search] [--out DIR]`."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lingjie-automl select",
                                description="rank features (dropout gates + permutation importance), select top-k")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +experiment=movielens_deepfm")
    p.add_argument("--top-k", type=int, default=None,
                   help="keep K features (default: those whose permutation drop is > 0)")
    p.add_argument("--search", action="store_true", help="search K with Optuna (trains one model per K)")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--gate-epochs", type=int, default=1)
    p.add_argument("--gate-penalty", type=float, default=0.01)
    p.add_argument("--repeats", type=int, default=1, help="permutations per feature")
    p.add_argument("--out", default=None, help="output directory (default outputs/automl/<experiment>/select)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")

    from trainer.compose import compose_config
    from automl.selection.permutation import permutation_importance
    from automl.selection.report import combined_order, plot_rankings, write_selected
    from automl.selection.training import checkpoint_of, final_metric, gate_ranking, run_trainer

    t0 = time.perf_counter()
    cfg = compose_config(a.overrides)
    out = Path(a.out or Path(cfg["paths"]["output_root"]) / "automl" / cfg["experiment_name"] / "select")
    out.mkdir(parents=True, exist_ok=True)
    show = bool(cfg.get("trainer", {}).get("progress_bar", True))  # trainer.progress_bar=false: quiet
    names = list(dict.fromkeys(n for g in cfg["model"]["feature_groups"].values() for n in g))
    gates = gate_ranking(cfg, names, epochs=a.gate_epochs, penalty=a.gate_penalty)
    run = run_trainer(a.overrides)
    base_auc, perm = permutation_importance(checkpoint_of(run), cfg["data"]["eval_path"], names,
                                            limit_rows=cfg["data"].get("limit_eval_rows"), repeats=a.repeats,
                                            seed=cfg.get("seed", 0), show_progress=show)
    order = combined_order(gates, perm)
    k = a.top_k or max(2, sum(1 for n in names if perm[n] > 0))
    tried: dict[int, float] = {}
    if a.search:
        from automl.selection.search import search_top_k, subset_evaluator

        tried = {len(names): final_metric(run)}
        k, more = search_top_k(order, subset_evaluator(out, cfg, a.overrides), n_trials=a.trials,
                               show_progress=show)
        tried.update(more)
    selected = order[:min(k, len(order))]
    header = ("selected by: python -m automl select " + " ".join(a.overrides) + "\n"
              + "".join(f"{n}: gate P(open) {gates[n]:.3f}, permutation AUC drop {perm[n]:+.4f}\n" for n in order))
    snippet, command = write_selected(out, cfg, a.overrides, selected, header)
    png = plot_rankings(out / "feature_rankings.png", gates, perm, selected)
    (out / "selection.json").write_text(json.dumps({
        "base_eval_auc": base_auc, "gates": gates, "permutation_auc_drop": perm, "order": order,
        "selected": selected, "search": {str(k_): v for k_, v in tried.items()}, "model_run": str(run),
        "seconds": time.perf_counter() - t0, "command": command}, indent=2))
    print(f"ranked {len(names)} features in {time.perf_counter() - t0:.1f}s (base eval AUC {base_auc:.4f})")
    for n in order:
        print(f"  {'*' if n in selected else ' '} {n:36s} gate {gates[n]:.3f}  perm drop {perm[n]:+.4f}")
    print(f"snippet: {snippet}\nchart: {png}\ntrain with: {command}", flush=True)
    return 0
