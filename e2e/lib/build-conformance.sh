#!/usr/bin/env bash
# Builds and caches the Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance,
# the version of crds/gateway-api/) as a Go test binary, outside the repo, keyed by
# version:
#   ${PORTCULLIS_CACHE:-$HOME/.cache/portcullis}/bin/gateway-conformance-<version>/conformance.test
# A binary that already exists is not rebuilt.
#
# `go test -c` of a package of a dependency module: a throw-away wrapper module that
# requires sigs.k8s.io/gateway-api and its separate module sigs.k8s.io/gateway-api/conformance
# at the pinned version (v1.7.0 needs Go 1.27, newer than this machine's), with
# -mod=mod so the suite's test-only requirements are resolved through the module proxy.
#
# Usage: e2e/lib/build-conformance.sh         (builds if needed; prints the binary path)
#        source e2e/lib/build-conformance.sh  (defines conformance_bin / conformance_ensure)
#
# Environment: PORTCULLIS_CACHE, PORTCULLIS_GATEWAY_API_VERSION (default: the bundle
# version of crds/gateway-api/). Builds run under `nice -n 19`.

set -euo pipefail

_CONF_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GATEWAY_API_VERSION="${PORTCULLIS_GATEWAY_API_VERSION:-$(
  sed -n 's/^ *gateway.networking.k8s.io\/bundle-version: *//p' \
    "$_CONF_REPO/crds/gateway-api/gateway.networking.k8s.io_gateways.yaml" | head -n1
)}"
PORTCULLIS_CACHE="${PORTCULLIS_CACHE:-$HOME/.cache/portcullis}"

_conf_log() { printf '[build-conformance] %s\n' "$*" >&2; }

# conformance_bin -> path of the cached test binary (whether or not it exists yet).
conformance_bin() {
  printf '%s/bin/gateway-conformance-%s/conformance.test\n' "$PORTCULLIS_CACHE" "$GATEWAY_API_VERSION"
}

_conf_build() {
  local dest tmp start
  command -v go >/dev/null || { _conf_log "go is not installed"; return 1; }
  [[ $GATEWAY_API_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    { _conf_log "no Gateway API version (read from crds/gateway-api/): '$GATEWAY_API_VERSION'"; return 1; }
  dest="$(conformance_bin)"
  mkdir -p "$(dirname "$dest")" "$PORTCULLIS_CACHE/src"
  tmp="$(mktemp -d "$PORTCULLIS_CACHE/src/gateway-conformance-$GATEWAY_API_VERSION.XXXXXX")"
  start=$SECONDS
  _conf_log "building the conformance suite $GATEWAY_API_VERSION (first time only; log: $tmp/build.log)..."
  cat >"$tmp/go.mod" <<GOMOD
module portcullis.dev/gateway-conformance

go 1.24

require (
	sigs.k8s.io/gateway-api $GATEWAY_API_VERSION
	sigs.k8s.io/gateway-api/conformance $GATEWAY_API_VERSION
)
GOMOD
  if ! (cd "$tmp" && env CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off \
    nice -n 19 go test -c -trimpath -o "$tmp/conformance.test" sigs.k8s.io/gateway-api/conformance) \
    >"$tmp/build.log" 2>&1; then
    _conf_log "building the conformance suite failed; last lines of $tmp/build.log:"
    tail -n 30 "$tmp/build.log" >&2
    return 1
  fi
  mv -f "$tmp/conformance.test" "$dest.tmp" && mv -f "$dest.tmp" "$dest"
  rm -rf "$tmp"
  _conf_log "built the conformance suite $GATEWAY_API_VERSION in $((SECONDS - start))s"
}

# conformance_ensure: build the suite if it is missing.
conformance_ensure() {
  local lock
  mkdir -p "$PORTCULLIS_CACHE"
  lock="$PORTCULLIS_CACHE/.build-conformance.lock"
  (
    if command -v flock >/dev/null; then flock 9; fi
    [[ -x "$(conformance_bin)" ]] || _conf_build
  ) 9>"$lock"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  conformance_ensure
  conformance_bin
fi
