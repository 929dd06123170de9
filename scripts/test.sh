#!/usr/bin/env bash
# The test command: sets up everything from a fresh machine (venv, Debian packages, Bugsink,
# the test collector binary and the provider-SDK stack venvs, cached outside the repo), lints,
# type-checks, builds the package and checks it with twine, then runs pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export OGZ_CACHE="${OGZ_CACHE:-$HOME/.cache/otel_gatewayz}"
source scripts/venv.sh test
bash scripts/setup-test-servers.sh
OGZ_COLLECTOR_BIN="$(bash scripts/build-collector.sh | tail -n 1)"
export OGZ_COLLECTOR_BIN
# The real provider-SDK stacks (tests/stacks/*.txt), each its own cached venv (tests/e2e/test_sdk_stacks.py).
bash scripts/build-stack.sh current >/dev/null
bash scripts/build-stack.sh pinned >/dev/null
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy otel_gatewayz examples
# Publishable: the sdist and wheel build and PyPI would render them (tests/test_packaging.py
# checks their metadata).
rm -rf dist
.venv/bin/python -m build --outdir dist . >/dev/null
.venv/bin/twine check --strict dist/*
export OGZ_DIST_DIR="$PWD/dist"
exec .venv/bin/python -m pytest -p no:cacheprovider --durations=15 "$@"
