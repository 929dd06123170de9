#!/usr/bin/env bash
# Build the otel_gatewayz collector from collector/builder-config.yaml with the collector's
# official builder, cached outside the repo under the manifest's sha256, and print the path of
# the binary. A cached binary is reused at once; concurrent runs wait for one build.
#
#   OGZ_CACHE              cache root (default ~/.cache/otel_gatewayz)
#   OGZ_BUILDER_CONFIG     manifest (default collector/builder-config.yaml)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest=$(realpath "${OGZ_BUILDER_CONFIG:-$root/collector/builder-config.yaml}")
cache=${OGZ_CACHE:-$HOME/.cache/otel_gatewayz}
hash=$(sha256sum "$manifest" | cut -d' ' -f1)
dest=$cache/collector/$hash
binary=$dest/otelcol-gatewayz

if [[ -x $binary ]]; then
  echo "$binary"
  exit 0
fi

mkdir -p "$cache/collector" "$cache/go"
exec 9>"$cache/collector/.lock"
if ! flock -n 9; then
  echo "build-collector: waiting for another build to finish" >&2
  flock 9
fi
if [[ -x $binary ]]; then  # built by the run we waited for
  echo "$binary"
  exit 0
fi

# The builder's version is the collector core version the manifest pins.
version=$(grep -m1 -oE 'go\.opentelemetry\.io/collector/[a-z/]+ v0\.[0-9]+\.[0-9]+' "$manifest" | cut -d' ' -f2)
if [[ -z $version ]]; then
  echo "build-collector: no go.opentelemetry.io/collector module version in $manifest" >&2
  exit 1
fi

command -v go >/dev/null || { echo "build-collector: Go is required (https://go.dev/dl/)" >&2; exit 1; }

# Modules and build cache live in the cache dir so a changed manifest rebuilds incrementally.
export GOPATH=$cache/go GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build
# -e applies to `go mod tidy` only (go build ignores flags it doesn't know): the builder's tidy
# also resolves the test-only imports of every component, some of which the module proxy we may
# be limited to does not serve; the build itself never needs them.
export GOFLAGS="${GOFLAGS:--p=2} -e"
export CGO_ENABLED=0
gobin=$cache/go/bin/builder-$version
if [[ ! -x $gobin/builder ]]; then
  echo "build-collector: installing builder $version" >&2
  GOBIN=$gobin go install "go.opentelemetry.io/collector/cmd/builder@$version" >&2
fi

work=$cache/collector/build-$hash
rm -rf "$work"
mkdir -p "$work"
start=$SECONDS
echo "build-collector: building $(basename "$manifest") ($hash) in $work" >&2
(cd "$work" && "$gobin/builder" --config "$manifest") >&2

mkdir -p "$dest"
cp "$work/build/otelcol-gatewayz" "$binary.tmp"
mv "$binary.tmp" "$binary"
cp "$manifest" "$dest/builder-config.yaml"
rm -rf "$work"
echo "build-collector: built in $((SECONDS - start))s, $(du -h "$binary" | cut -f1)" >&2
echo "$binary"
