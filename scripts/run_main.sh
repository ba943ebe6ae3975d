#!/usr/bin/env bash
# The main job: set up the environment, prepare MovieLens-100k, train the default experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh torch,dev
exec .venv/bin/python -m trainer +experiment=movielens_deepfm "$@"
