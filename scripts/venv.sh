# Sourced by scripts/demo.sh and scripts/test.sh: a venv in .venv with the project installed.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
EXTRAS="${1:-example}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp_base="$VENV/.installed-$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -c1-16)"
stamp="$stamp_base-$EXTRAS"
# The test extra includes the example extra, so a test venv serves the demo as it is.
if [ ! -f "$stamp" ] && ! { [ "$EXTRAS" = example ] && [ -f "$stamp_base-test" ]; }; then
  # eager: what a fresh machine resolves today (the newest sentry-sdk among them), not what an older venv kept
  "$VENV/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e "$REPO_ROOT[$EXTRAS]"
  touch "$stamp"
fi
