#!/usr/bin/env bash
# Create (or reuse) .venv with Lingjie (editable) and the extras given as arguments (default:
# torch,dev), at the exact versions of requirements-lock.txt (pyproject.toml holds the ranges).
# Idempotent: re-installs only when pyproject.toml, setup.py, the lock or the extras changed.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-torch,dev}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=".venv/.lingjie-installed"
WANT="$(cat pyproject.toml setup.py requirements-lock.txt | sha256sum | cut -c1-16) $EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  quiet() { grep -v "is ignored" || true; }  # pip's notes about this machine's extra indexes
  .venv/bin/python -m pip install -q --disable-pip-version-check "pip==25.3" 2>&1 | quiet
  .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements-lock.txt \
    -e ".[${EXTRAS}]" 2>&1 | quiet
  .venv/bin/python -c "import hydra, pyarrow, lingjie" # fail loudly if the install did not work
  echo "$WANT" > "$STAMP"
fi
