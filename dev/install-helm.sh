#!/usr/bin/env bash
# Makes the Helm CLI the chart tests use available, idempotently.
#
# The tests look for helm in this order: $HELM, then the project cache
# ($ES_CACHE_DIR/bin/helm, ~/.cache/engagement-stream by default), then helm on PATH. This script leaves
# things alone when a helm of the wanted version is already on PATH or in the
# cache; otherwise it builds that version from source through the Go module
# proxy into the cache (a few minutes on the first run, nothing afterwards).
set -euo pipefail

version=${HELM_VERSION:-v4.3.2}
cache_bin="${ES_CACHE_DIR:-$HOME/.cache/engagement-stream}/bin"
target="$cache_bin/helm"

# Prints the version a helm binary reports, or nothing if it cannot run.
reported_version() {
  "$1" version --template '{{.Version}}' 2>/dev/null || true
}

if command -v helm >/dev/null 2>&1 \
   && [ "$(reported_version "$(command -v helm)")" = "$version" ]; then
  echo "install-helm: helm $version already on PATH ($(command -v helm))"
  exit 0
fi
if [ -x "$target" ] && [ "$(reported_version "$target")" = "$version" ]; then
  echo "install-helm: helm $version already built ($target)"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-helm: helm $version is missing and Go is not installed;" \
       "install Go 1.26+ or put helm $version on PATH, then run me again" >&2
  exit 1
fi

echo "install-helm: building helm $version into $cache_bin (takes a few minutes)"
mkdir -p "$cache_bin"
# `go install` leaves Helm's version variable at its source default ("v4.3"),
# so set it the way Helm's own release build does; -s -w drop debug symbols.
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
GOBIN="$cache_bin" CGO_ENABLED=0 \
  go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@$version"

built=$(reported_version "$target")
if [ "$built" != "$version" ]; then
  echo "install-helm: $target reports '$built', expected $version" >&2
  exit 1
fi
echo "install-helm: helm $version ready; the tests find it at $target"
