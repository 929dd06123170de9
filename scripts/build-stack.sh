#!/usr/bin/env bash
# Builds (once) a venv for one real client stack (tests/stacks/NAME.txt) with the project installed
# (editable, with EXTRAS: [example] by default, [test] for a stack pytest itself runs in), cached in
# $OGZ_CACHE/stacks/<hash of the requirements, extras, pyproject.toml and this checkout's path>.
# Prints the venv's bin directory on its last line.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${1:?usage: build-stack.sh current|pinned|sentry2 [example|test]}"
EXTRAS="${2:-example}"
REQUIREMENTS="$REPO_ROOT/tests/stacks/$NAME.txt"
CACHE="${OGZ_CACHE:-$HOME/.cache/otel_gatewayz}/stacks"
KEY="$( (cat "$REQUIREMENTS" "$REPO_ROOT/pyproject.toml" "$0"; echo "$REPO_ROOT $EXTRAS") | sha256sum | cut -c1-16)"
VENV="$CACHE/$NAME-$KEY"
mkdir -p "$CACHE"
# One build per stack at a time (parallel test workers may ask at once); the others wait and reuse it.
exec 9>"$CACHE/.$NAME.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
  rm -rf "$VENV"
  started=$SECONDS
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e "$REPO_ROOT[$EXTRAS]" -r "$REQUIREMENTS" >&2
  "$VENV/bin/python" -m pip check >&2
  touch "$VENV/.complete"
  echo "built stack $NAME in $((SECONDS - started))s: $VENV" >&2
fi
echo "$VENV/bin"
