"""Print the reliability table as Markdown: each row's input, what main did before issue 17,
and what the CLI does now (exit code and its one error line), by running every row.

    PYTHONPATH=. .venv/bin/python -m tests.reliability.report [ID_SUBSTRING ...]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.reliability.test_table import CASES, _run


def _outcome(case: object, tmp: Path) -> str:
    proc = _run(case, tmp)  # type: ignore[arg-type]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    line = errors[0] if errors else ""
    return f"exit {proc.returncode}" + (f": `{line[:150]}`" if line else "")


def main(filters: list[str]) -> None:
    print("| row | before | now |\n|---|---|---|")
    for case in CASES:
        if filters and not any(f in case.id for f in filters):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            now = _outcome(case, Path(tmp))
        print(f"| {case.id} | {case.before or '-'} | {now.replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
