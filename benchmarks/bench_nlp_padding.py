"""Length-bucketed vs fixed padding for text models: real tokens/s and padding fraction.

The same training rows (chnsenti train, first N rows, shuffled the same way) are trained one
epoch with data.padding=bucket | longest | max_length, interleaved and repeated; medians are
reported. ``real tokens`` are the rows' own tokens ([CLS]/[SEP] included), so tokens/s
counts useful work only; the padding fraction is the share of padded slots that hold no token.

    python benchmarks/bench_nlp_padding.py [--rows 3000] [--repeats 3] [--model textcnn|transformer]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path


def one(model: str, padding: str, rows: int, tmp: Path, k: int) -> dict:
    from trainer.compose import compose_config
    from trainer.job import run_job

    extra = ["model.hidden_size=128", "model.num_layers=2", "model.intermediate_size=512",
             "model.num_heads=4"] if model == "transformer" else []
    cfg = compose_config([
        "+experiment=chnsenti_textcnn", f"model={model}", *extra, f"data.padding={padding}",
        f"data.limit_train_rows={rows}", "data.eval_path=null", "trainer.epochs=1", "trainer.export.enabled=false",
        "trainer.early_stopping.metric=null", "trainer.progress_bar=false", "logger.tensorboard=false",
        "hardware.threads=1", f"paths.run_dir={tmp}/{model}-{padding}-{k}", f"paths.output_root={tmp}/out"])
    run = run_job(cfg, "")
    m = json.loads((Path(run) / "metrics.json").read_text())
    return {"tokens_per_sec": m["tokens"]["train_tokens_per_sec"], "padding_fraction": m["tokens"]["padding_fraction"],
            "samples_per_sec": m["train_samples_per_sec"]}


def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="textcnn", choices=["textcnn", "transformer"])
    args = parser.parse_args()
    modes = ["bucket", "longest", "max_length"]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):  # interleaved: each repeat runs every mode once
            for mode in modes:
                results[mode].append(one(args.model, mode, args.rows, Path(tmp), k))
    base = statistics.median(r["tokens_per_sec"] for r in results["max_length"])
    for mode in modes:
        med = {key: statistics.median(r[key] for r in results[mode]) for key in results[mode][0]}
        print(json.dumps({"model": args.model, "padding": mode, "rows": args.rows, "repeats": args.repeats,
                          **{k: round(v, 4 if k == "padding_fraction" else 1) for k, v in med.items()},
                          "speedup_vs_max_length": round(med["tokens_per_sec"] / base, 2)}), flush=True)


if __name__ == "__main__":
    main()
