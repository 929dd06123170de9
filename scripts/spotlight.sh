#!/usr/bin/env bash
# Run Spotlight (Sentry's local viewer) from its lockfile install (scripts/npm-ci.sh)
# on 127.0.0.1:${SPOTLIGHT_PORT:-8969} (SPOTLIGHT_HOST to change), in the foreground. The SDK sends to
# http://127.0.0.1:$SPOTLIGHT_PORT/stream; the UI is at http://localhost:$SPOTLIGHT_PORT.
#
# Spotlight reports its own errors and traces to sentry.io under a built-in DSN. Its Node SDK
# honours https_proxy, so by default that goes to a loopback port nothing listens on
# (SPOTLIGHT_TELEMETRY_PROXY, default http://127.0.0.1:9) and no byte leaves the machine; set
# SPOTLIGHT_OWN_TELEMETRY=1 to let it through.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${SPOTLIGHT_PORT:-8969}
binary=$(bash "$root/scripts/npm-ci.sh" tools/spotlight)/node_modules/.bin/spotlight
if [[ ${SPOTLIGHT_OWN_TELEMETRY:-0} != 1 ]]; then
  export https_proxy=${SPOTLIGHT_TELEMETRY_PROXY:-http://127.0.0.1:9} no_proxy=localhost,127.0.0.1,::1
  unset HTTPS_PROXY http_proxy HTTP_PROXY NO_PROXY
fi
# Spotlight would listen on every interface: keep it on loopback (tools/spotlight/loopback.cjs).
export NODE_OPTIONS="--require $root/tools/spotlight/loopback.cjs${NODE_OPTIONS:+ $NODE_OPTIONS}"
exec "$binary" server --port "$port" "$@"
