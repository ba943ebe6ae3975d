"""Train every shipped experiment on its full data and print the quality table.

    .venv/bin/python benchmarks/quality.py [--experiments movielens_deepfm adult_widedeep] [--out DIR]

Exits with status 1 if a quality floor is missed (movielens_deepfm test AUC >= 0.70,
adult_widedeep test AUC >= 0.90, digits_resnet top-1 >= 0.97, mnist_detection mAP@.5 >= 0.5), so the README's numbers can be re-checked in one command.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
FLOORS = {"movielens_deepfm": ("eval/auc", 0.70), "adult_widedeep": ("eval/auc", 0.90),
          "digits_resnet": ("eval/top1", 0.97), "mnist_detection": ("eval/map50", 0.5)}
COLUMNS = ["eval/auc", "eval/gauc", "eval/logloss", "eval/recall@10", "eval/recall@50", "eval/top1", "eval/map50",
           "train/samples_per_sec"]


def run(experiment: str, out: Path) -> dict:
    run_dir = out / experiment
    subprocess.run([sys.executable, "-m", "trainer", f"+experiment={experiment}", "trainer.progress_bar=false",
                    f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())["final"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="*", default=EXPERIMENTS)
    parser.add_argument("--out", default=None, help="where runs go (default: a temp dir)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="lingjie-quality-"))
    print("| experiment | " + " | ".join(COLUMNS) + " | floor |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    failed = False
    for exp in args.experiments:
        final = run(exp, out)
        cells = [f"{final[c]:.4f}" if c in final and not c.endswith("per_sec") else
                 (f"{final[c]:,.0f}" if c in final else "—") for c in COLUMNS]
        floor = ""
        if exp in FLOORS:
            key, minimum = FLOORS[exp]
            ok = final.get(key, 0.0) >= minimum
            failed |= not ok
            floor = f"{key} >= {minimum}: {'ok' if ok else 'MISSED'}"
        print(f"| {exp} | " + " | ".join(cells) + f" | {floor} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
