#!/usr/bin/env bash
# Before a release: the unit tests and the smoke end-to-end test in a venv holding the newest
# release of every dependency we declare, our upper bounds ignored (scripts/newest_upstreams.py).
# Prints each package's installed version against the range we declare, then what broke; exits
# non-zero when something broke. The venv is cached in $OGZ_CACHE and rebuilt daily.
# Usage: bash scripts/newest-upstreams.sh [--rebuild] [-- PYTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
export OGZ_CACHE="${OGZ_CACHE:-$HOME/.cache/otel_gatewayz}"
exec python3 scripts/newest_upstreams.py "$@"
