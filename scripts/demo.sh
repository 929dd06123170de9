#!/usr/bin/env bash
# The main job: the example gateway under `opentelemetry-instrument uvicorn`, on embedded
# defaults (no Sentry account, no Docker), with Spotlight (Sentry's local viewer, installed
# from tools/spotlight/package-lock.json with `npm ci`) when Node.js is available. Try:
#   curl -s localhost:8000/v1/chat/completions -H 'Authorization: Bearer gw_alice' \
#        -H 'content-type: application/json' -d '{"model":"gpt-4","messages":[]}'
#   curl -s localhost:8000/v1/errors/provider -H 'Authorization: Bearer gw_alice'
#
# Ports and switches (environment):
#   DEMO_GATEWAY_PORT (8000)  DEMO_PROVIDER_PORT (8001)  DEMO_METRICS_PORT (9464)
#   DEMO_SPOTLIGHT_PORT (8969)  DEMO_SPOTLIGHT=0 (no viewer)  DEMO_LOG_DIR (where logs go)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh example

gateway_port=${DEMO_GATEWAY_PORT:-8000}
provider_port=${DEMO_PROVIDER_PORT:-8001}
metrics_port=${DEMO_METRICS_PORT:-9464}
spotlight_port=${DEMO_SPOTLIGHT_PORT:-8969}
log_dir=${DEMO_LOG_DIR:-${TMPDIR:-/tmp}/otel_gatewayz-demo}
mkdir -p "$log_dir"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls a URL until it answers 2xx (the venv's Python, so curl is not needed).
answers() {  # url timeout-seconds pid
  .venv/bin/python - "$1" "$2" "$3" <<'PY'
import os, sys, time, urllib.request
url, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status < 300:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(2)  # the server died
    time.sleep(0.2)
sys.exit(1)
PY
}

.venv/bin/uvicorn examples.gateway.provider:app --host 127.0.0.1 --port "$provider_port" --log-level warning \
  >"$log_dir/provider.log" 2>&1 &
pids+=($!)

spotlight_url=""
if [ -n "${SENTRY_DSN:-}" ]; then
  echo "demo: SENTRY_DSN is set: events go to Sentry, Spotlight is not started"
elif [ "${DEMO_SPOTLIGHT:-1}" != 1 ]; then
  echo "demo: DEMO_SPOTLIGHT=${DEMO_SPOTLIGHT}: Spotlight is not started"
elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "demo: Node.js/npm not found: running without Spotlight (Sentry's local viewer)."
  echo "demo: install Node.js >= 20 to see errors and traces at http://localhost:$spotlight_port"
else
  log=$log_dir/spotlight.log
  echo "demo: starting Spotlight (first run: npm ci from tools/spotlight/package-lock.json); log: $log"
  SPOTLIGHT_PORT=$spotlight_port bash scripts/spotlight.sh >"$log" 2>&1 &
  spotlight_pid=$!
  pids+=("$spotlight_pid")
  # The UI page itself, not only /health: a broken dependency once failed every request.
  if answers "http://127.0.0.1:$spotlight_port/" 300 "$spotlight_pid"; then
    spotlight_url="http://localhost:$spotlight_port"
    export SENTRY_SPOTLIGHT="${SENTRY_SPOTLIGHT:-http://127.0.0.1:$spotlight_port/stream}"
  else
    echo "demo: ERROR: Spotlight did not start; continuing without it. Last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    kill "$spotlight_pid" 2>/dev/null || true
  fi
fi

if ! answers "http://127.0.0.1:$provider_port/health" 60 "${pids[0]}"; then
  echo "demo: ERROR: the stub provider did not start; see $log_dir/provider.log" >&2
  tail -n 20 "$log_dir/provider.log" >&2 || true
  exit 1
fi

export GATEWAY_PROVIDER_URL="${GATEWAY_PROVIDER_URL:-http://127.0.0.1:$provider_port}"
export OTEL_EXPORTER_PROMETHEUS_HOST="${OTEL_EXPORTER_PROMETHEUS_HOST:-127.0.0.1}"
export OTEL_EXPORTER_PROMETHEUS_PORT="${OTEL_EXPORTER_PROMETHEUS_PORT:-$metrics_port}"
export APP_ENV="${APP_ENV:-development}"
if [ -z "$spotlight_url" ] && [ -z "${SENTRY_DSN:-}" ]; then
  # No viewer: show each span and error on the console instead, one readable line each.
  export GATEWAYZ_CONSOLE="${GATEWAYZ_CONSOLE:-true}"
  echo "demo: no viewer running: spans and errors are printed here, one line each (GATEWAYZ_CONSOLE)"
fi
export RELEASE_SHA="${RELEASE_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"

echo
echo "  Gateway:   http://127.0.0.1:$gateway_port"
echo "  Metrics:   http://127.0.0.1:$OTEL_EXPORTER_PROMETHEUS_PORT/metrics"
if [ -n "$spotlight_url" ]; then
  echo "  Spotlight: $spotlight_url  (errors and traces; log: $log_dir/spotlight.log)"
fi
echo "  Logs:      $log_dir (the gateway logs here, on the console)"
echo "  Try:       curl -s localhost:$gateway_port/v1/errors/provider -H 'Authorization: Bearer gw_alice'"
echo

.venv/bin/opentelemetry-instrument .venv/bin/uvicorn examples.gateway.app:app --host 127.0.0.1 --port "$gateway_port" &
pids+=($!)
wait "${pids[-1]}"
