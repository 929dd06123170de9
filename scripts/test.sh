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
# Both sentry-sdk majors: .venv has the newest (3.x); this venv the oldest supported 2.x.
SENTRY2_BIN="$(bash scripts/build-stack.sh sentry2 test | tail -n 1)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy otel_gatewayz examples
# Publishable: the sdist and wheel build and PyPI would render them (tests/test_packaging.py
# checks their metadata).
rm -rf dist
.venv/bin/python -m build --outdir dist . >/dev/null
.venv/bin/twine check --strict dist/*
export OGZ_DIST_DIR="$PWD/dist"
# Most tests wait on real servers and processes: four run side by side on two cores (pytest-xdist;
# worksteal keeps every worker busy to the end).
parallel=(-n "${OGZ_TEST_WORKERS:-4}" --dist worksteal)
sentry_sdk_version() { "$1/python" -c 'from importlib.metadata import version; print(version("sentry-sdk"))'; }
# 1. Everything, on the newest sentry-sdk.
echo "== pytest: everything, sentry-sdk $(sentry_sdk_version .venv/bin)"
status=0
.venv/bin/python -m pytest -p no:cacheprovider "${parallel[@]}" --durations=15 "$@" || status=$?
# 2. The Sentry-facing tests again on sentry-sdk 2.x: unit tests (every internal guard), errors, trace
#    links, DSC, handled, sessions, PII, storm control, Relay's normaliser, the side-by-side with
#    native 2.x, Bugsink, Spotlight in the browser, and an unsupported sentry-sdk.
echo "== pytest: the Sentry-facing tests, sentry-sdk $(sentry_sdk_version "$SENTRY2_BIN")"
"$SENTRY2_BIN/python" -m pytest -p no:cacheprovider "${parallel[@]}" --durations=5 tests/unit tests/e2e/test_sentry_fidelity.py \
    tests/e2e/test_storm.py tests/e2e/test_error_context.py tests/e2e/test_privacy.py tests/e2e/test_distro.py \
    tests/browser "$@" || status=$?
exit "$status"
