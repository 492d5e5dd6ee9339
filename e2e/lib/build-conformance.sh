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
# The images the suite's base manifests name, built here (no registry can be reached):
# echo-basic from the module's conformance/echo-basic sources, archived under every
# registry.k8s.io/gateway-api/echo-basic:<tag> the manifests use, and CoreDNS (its
# UDP backend, which must be Ready before any test runs) with the plugins its Corefile
# names, from the node tier's CoreDNS module (a newer CoreDNS than the tag says).
#
# Usage: e2e/lib/build-conformance.sh         (builds if needed; prints the binary path)
#        e2e/lib/build-conformance.sh images OUTDIR  (the image archives; prints them)
#        source e2e/lib/build-conformance.sh  (defines conformance_bin / conformance_ensure
#                                              / conformance_images)
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
  if ! (cd "$tmp" && env CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off \
    nice -n 19 go build -trimpath -ldflags='-s -w' -o "$tmp/echo-basic" \
    sigs.k8s.io/gateway-api/conformance/echo-basic) >>"$tmp/build.log" 2>&1; then
    _conf_log "building echo-basic failed; last lines of $tmp/build.log:"
    tail -n 30 "$tmp/build.log" >&2
    return 1
  fi
  mv -f "$tmp/echo-basic" "$(dirname "$dest")/echo-basic"
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
    [[ -x "$(conformance_bin)" && -x "$(dirname "$(conformance_bin)")/echo-basic" ]] || _conf_build
  ) 9>"$lock"
}

# _conf_coredns -> a CoreDNS with the plugins the suite's Corefile names (errors, log,
# forward, whoami), built from the node tier's CoreDNS module download (e2e/lib/build-k8s.sh)
# the way CoreDNS documents external builds; cached beside the suite.
_conf_coredns() {
  local src dir bin
  bin="$(dirname "$(conformance_bin)")/coredns"
  if [[ ! -x $bin ]]; then
    src="$(find "$PORTCULLIS_CACHE/src" -maxdepth 1 -name 'coredns-v*' -type d | sort | tail -n1)"
    [[ -f $src/go.mod ]] || { _conf_log "no CoreDNS module download (run e2e/lib/build-k8s.sh node)"; return 1; }
    dir="$(mktemp -d "$PORTCULLIS_CACHE/src/coredns-conformance.XXXXXX")"
    cp "$src/go.mod" "$src/go.sum" "$dir/"
    cat >"$dir/main.go" <<'GO'
// Generated by e2e/lib/build-conformance.sh: CoreDNS for the suite's UDP backend.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func init() { dnsserver.Directives = []string{"errors", "log", "forward", "whoami"} }

func main() { coremain.Run() }
GO
    (cd "$dir" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod GOWORK=off \
      nice -n 19 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" .) >"$dir/build.log" 2>&1 ||
      { _conf_log "building CoreDNS failed; see $dir/build.log"; return 1; }
    mv -f "$bin.tmp" "$bin"
    rm -rf "$dir"
  fi
  printf '%s\n' "$bin"
}

# conformance_images OUTDIR: echo-basic under each name the manifests use, and CoreDNS.
conformance_images() {
  local out="$1" manifests echo root ref n=0 coredns
  # shellcheck source-path=SCRIPTDIR source=node-images.sh
  source "$(dirname "${BASH_SOURCE[0]}")/node-images.sh"
  conformance_ensure
  echo="$(dirname "$(conformance_bin)")/echo-basic"
  manifests="$(cd / && GOFLAGS='' GOTOOLCHAIN=local go mod download -json \
    "sigs.k8s.io/gateway-api/conformance@$GATEWAY_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d $manifests/base ]] || { _conf_log "no conformance sources for $GATEWAY_API_VERSION"; return 1; }
  mkdir -p "$out"
  root="$(mktemp -d)"
  _img_rootfs_base "$root"
  install -m 0755 "$echo" "$root/echo-basic"
  while read -r ref; do
    n=$((n + 1))
    oci_archive "$ref" "$root" "$out/echo-basic-$n.tar" \
      '{"Entrypoint":["/echo-basic"],"User":"65532:65532","ExposedPorts":{"3000/tcp":{}}}'
    printf '%s\n' "$out/echo-basic-$n.tar"
  done < <(grep -rhoE 'registry\.k8s\.io/gateway-api/echo-basic:[A-Za-z0-9._-]+' "$manifests/base" "$manifests/tests" | sort -u)
  rm -rf "$root"
  ref="$(grep -rhoE 'registry\.k8s\.io/coredns/coredns:[A-Za-z0-9._-]+' "$manifests/base" | sort -u | head -n1)"
  if [[ -n $ref ]] && coredns="$(_conf_coredns)"; then
    root="$(mktemp -d)"
    _img_rootfs_base "$root"
    install -m 0755 "$coredns" "$root/coredns"
    oci_archive "$ref" "$root" "$out/coredns.tar" '{"Entrypoint":["/coredns"]}'
    rm -rf "$root"
    printf '%s\n' "$out/coredns.tar"
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    images) conformance_images "${2:?usage: build-conformance.sh images OUTDIR}" ;;
    *) conformance_ensure && conformance_bin ;;
  esac
fi
