#!/usr/bin/env bash
# Create (or reuse) .venv with Lingjie and the pinned extras given as arguments (default: torch,dev).
# Idempotent: re-installs only when setup.py or the extras changed.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-torch,dev}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=".venv/.lingjie-installed"
WANT="$(sha256sum setup.py | cut -c1-16) $EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "pip==25.3" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import torch, hydra, pyarrow" # fail loudly if the install did not work
  echo "$WANT" > "$STAMP"
fi
