#!/usr/bin/env bash
# Create (or reuse) benchmarks/.venv-peers with the pinned peer libraries of requirements.txt
# (deepctr 0.9.4 on TF 2.21 + tf-keras 2.21). Idempotent: re-installs only when
# requirements.txt changed. Prints the venv's python path on its last line.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/../.venv-peers"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.peers-installed"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pip==25.3" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=1 "$VENV/bin/python" -c "import deepctr, tf_keras, sklearn, pyarrow" >&2  # fail loudly
  echo "$WANT" > "$STAMP"
fi
echo "$(cd "$VENV" && pwd)/bin/python"
