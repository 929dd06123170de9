#!/usr/bin/env bash
# npm ci for one of the repo's npm projects (tools/spotlight, tests/browser), reproducibly from
# its committed package-lock.json, into a cache outside the repo keyed by the sha256 of its
# package.json + package-lock.json; prints the directory holding node_modules. A cached install
# is reused at once; concurrent runs wait for one install. Exits 1 (with a reason on stderr)
# when Node.js/npm is missing or the install fails.
#
#   usage: scripts/npm-ci.sh tools/spotlight
#   OGZ_CACHE   cache root (default ~/.cache/otel_gatewayz)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
project=$(cd "$root" && realpath "${1:?usage: npm-ci.sh PROJECT_DIR}")
name=$(basename "$project")
cache=${OGZ_CACHE:-$HOME/.cache/otel_gatewayz}
hash=$(cat "$project/package.json" "$project/package-lock.json" | sha256sum | cut -c1-16)
dest=$cache/npm/$name-$hash

if [[ -f $dest/.ogz-installed ]]; then
  echo "$dest"
  exit 0
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "npm-ci: $tool not found (Node.js >= 20 with npm is needed for $name)" >&2; exit 1; }
done

mkdir -p "$cache/npm"
exec 9>"$cache/npm/.lock"
if ! flock -n 9; then
  echo "npm-ci: waiting for another install to finish" >&2
  flock 9
fi
if [[ -f $dest/.ogz-installed ]]; then
  echo "$dest"
  exit 0
fi

echo "npm-ci: npm ci for $name in $dest" >&2
rm -rf "$dest"
mkdir -p "$dest"
cp "$project/package.json" "$project/package-lock.json" "$dest/"
(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
touch "$dest/.ogz-installed"
echo "$dest"
