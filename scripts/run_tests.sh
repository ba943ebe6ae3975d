#!/usr/bin/env bash
# The test suite: set up the environment, then run every test (slow ones included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh all,dev
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
