#!/usr/bin/env bash
# Installs the real servers the end-to-end tests run against (see DESIGN.md,
# "Real servers for tests"). Idempotent and quick once done; safe in CI (no stdin).
set -euo pipefail

BUGSINK_VERSION="2.6.2"
CACHE_DIR="${OGZ_CACHE:-$HOME/.cache/otel_gatewayz}"
BUGSINK_VENV="$CACHE_DIR/bugsink-$BUGSINK_VERSION"
BUGSINK_MARKER="$BUGSINK_VENV/.ogz-installed"
BUGSINK_REQUIREMENTS="bugsink==$BUGSINK_VERSION gunicorn"
PYTHON="${OGZ_BUGSINK_PYTHON:-python3}"

export DEBIAN_FRONTEND=noninteractive

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

apt_updated=0
apt_install() {
    # apt-get update only when something is actually missing.
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -q
        apt_updated=1
    fi
    as_root apt-get install -y -q --no-install-recommends "$@" </dev/null
}

install_prometheus() {
    if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
        return
    fi
    echo "setup-test-servers: installing Debian package prometheus"
    apt_install prometheus
    # The package starts a system-wide service on :9090; the tests run their own.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
}

bugsink_ready() {
    # The interpreter check catches a venv whose base Python has gone.
    [ -x "$BUGSINK_VENV/bin/bugsink-manage" ] && [ -x "$BUGSINK_VENV/bin/gunicorn" ] &&
        [ "$(cat "$BUGSINK_MARKER" 2>/dev/null)" = "$BUGSINK_REQUIREMENTS" ] &&
        "$BUGSINK_VENV/bin/python" -c 'import bugsink, gunicorn' >/dev/null 2>&1
}

install_bugsink() {
    if bugsink_ready; then
        return
    fi
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/.bugsink.lock"
    flock 9  # concurrent runs wait for one install
    if bugsink_ready; then
        return
    fi
    echo "setup-test-servers: creating Bugsink $BUGSINK_VERSION venv at $BUGSINK_VENV"
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$BUGSINK_VENV"
    "$PYTHON" -m venv "$BUGSINK_VENV"
    # shellcheck disable=SC2086  # the requirements are meant to split into words
    "$BUGSINK_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input $BUGSINK_REQUIREMENTS
    "$BUGSINK_VENV/bin/bugsink-manage" --version >/dev/null
    echo "$BUGSINK_REQUIREMENTS" >"$BUGSINK_MARKER"
    exec 9>&-
}

install_chromium() {
    # The browser test drives Debian's Chromium; no test tool may download a browser.
    if [ -x /usr/bin/chromium ]; then
        return
    fi
    echo "setup-test-servers: installing Debian package chromium"
    apt_install chromium
}

install_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        return
    fi
    echo "setup-test-servers: installing Debian packages nodejs npm"
    apt_install nodejs npm
}

install_npm_projects() {
    # npm ci from the committed lockfiles, cached under ~/.cache/otel_gatewayz/npm by their hash.
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    bash "$root/scripts/npm-ci.sh" tools/spotlight >/dev/null
    bash "$root/scripts/npm-ci.sh" tests/browser >/dev/null
}

install_prometheus
install_bugsink
install_chromium
install_node
install_npm_projects
echo "setup-test-servers: prometheus $(/usr/bin/prometheus --version 2>&1 | head -1 | awk '{print $3}'), bugsink $BUGSINK_VERSION at $BUGSINK_VENV, $(/usr/bin/chromium --version 2>/dev/null), node $(node --version)"
