"""`python -m automl features ...` (feature generation) | `python -m automl select ...` (selection)."""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COMMANDS = {
    "features": "automl.features.cli",
    "select": "automl.selection.cli",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: lingjie-automl (or python -m automl) {{{'|'.join(COMMANDS)}}} +experiment=NAME [overrides] [options]",
              file=sys.stderr)
        return 2
    import importlib

    from lingjie.errors import LingjieError

    module = importlib.import_module(COMMANDS[argv[0]])
    try:
        return module.main(argv[1:])
    except LingjieError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


def cli() -> None:
    """The ``lingjie-automl`` console script (same as ``python -m automl``)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
