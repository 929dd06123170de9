#!/usr/bin/env bash
# The main job: the example gateway under `opentelemetry-instrument uvicorn`, on embedded
# defaults (no Sentry account, no Docker). Gateway on :8000, stub provider on :8001,
# Prometheus metrics on :9464/metrics, and Spotlight (Sentry's local viewer) on :8969 when
# npx is available. Try:
#   curl -s localhost:8000/v1/chat/completions -H 'Authorization: Bearer gw_alice' \
#        -H 'content-type: application/json' -d '{"model":"gpt-4","messages":[]}'
#   curl -s localhost:8000/v1/errors/provider -H 'Authorization: Bearer gw_alice'
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh example
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
.venv/bin/uvicorn examples.gateway.provider:app --host 127.0.0.1 --port 8001 --log-level warning &
pids+=($!)
if [ -z "${SENTRY_DSN:-}" ] && command -v npx >/dev/null 2>&1 && [ "${DEMO_SPOTLIGHT:-1}" = 1 ]; then
  npx --yes @spotlightjs/spotlight@4.11.8 >/dev/null 2>&1 &
  pids+=($!)
  export SENTRY_SPOTLIGHT="${SENTRY_SPOTLIGHT:-true}"
  echo "Spotlight (Sentry events and transactions): http://localhost:8969"
fi
export GATEWAY_PROVIDER_URL="${GATEWAY_PROVIDER_URL:-http://127.0.0.1:8001}"
export APP_ENV="${APP_ENV:-development}"
export RELEASE_SHA="${RELEASE_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
echo "Gateway: http://127.0.0.1:8000  metrics: http://127.0.0.1:9464/metrics"
.venv/bin/opentelemetry-instrument .venv/bin/uvicorn examples.gateway.app:app --host 127.0.0.1 --port 8000
