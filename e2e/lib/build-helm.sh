#!/usr/bin/env bash
# Builds and caches Helm from its Go module (helm.sh/helm/v3/cmd/helm), outside the
# repo, keyed by version:
#   ${PORTCULLIS_CACHE:-$HOME/.cache/portcullis}/bin/helm-<version>/helm
# A binary that already exists is not rebuilt.
#
# Unlike k8s.io/kubernetes, Helm's go.mod has no local-path replaces, so a plain
# `go install helm.sh/helm/v3/cmd/helm@<version>` into a temporary GOBIN works.
#
# Usage: e2e/lib/build-helm.sh            (builds if needed; prints the binary path)
#        source e2e/lib/build-helm.sh     (defines helm_bin / helm_ensure; builds nothing)
#
# Environment: PORTCULLIS_CACHE, PORTCULLIS_HELM_VERSION (v3.x).
# Builds run under `nice -n 19` with the default GOCACHE / GOMODCACHE.

set -euo pipefail

HELM_VERSION="${PORTCULLIS_HELM_VERSION:-v3.22.0}"
PORTCULLIS_CACHE="${PORTCULLIS_CACHE:-$HOME/.cache/portcullis}"

_helm_log() { printf '[build-helm] %s\n' "$*" >&2; }

# helm_bin -> path of the cached binary (whether or not it exists yet).
helm_bin() {
  printf '%s/bin/helm-%s/helm\n' "$PORTCULLIS_CACHE" "$HELM_VERSION"
}

_helm_build() {
  local dest tmp start
  command -v go >/dev/null || { _helm_log "go is not installed (needed to build helm)"; return 1; }
  dest="$(helm_bin)"
  mkdir -p "$(dirname "$dest")" "$PORTCULLIS_CACHE/src"
  tmp="$(mktemp -d "$PORTCULLIS_CACHE/src/helm-$HELM_VERSION.XXXXXX")"
  start=$SECONDS
  _helm_log "building helm $HELM_VERSION (first time only, ~2-4 min on 2 cores; log: $tmp/build.log)..."
  # Helm's Makefile fills in version variables with -X; do the same. Without the
  # Kubernetes version, `helm template` and `helm lint` assume Kubernetes 1.20 and refuse
  # charts with a newer `kubeVersion`. Like the Makefile, take it from the client-go
  # version Helm is built with (v0.N.P -> 1.N).
  local gomod client_go k8s_minor
  gomod="$(cd / && GOFLAGS='' GOTOOLCHAIN=local go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod" 2>/dev/null || true)"
  if [[ ! $client_go =~ ^v0\.([0-9]+)\. ]]; then
    _helm_log "could not read the k8s.io/client-go version from the go.mod of helm $HELM_VERSION"
    return 1
  fi
  k8s_minor="${BASH_REMATCH[1]}"
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  if ! (cd "$tmp" && env CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off GOBIN="$tmp/bin" \
    nice -n 19 go install -trimpath -buildvcs=false -ldflags="$ldflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$tmp/build.log" 2>&1; then
    _helm_log "building helm $HELM_VERSION failed; last lines of $tmp/build.log:"
    tail -n 30 "$tmp/build.log" >&2
    return 1
  fi
  mv -f "$tmp/bin/helm" "$dest.tmp" && mv -f "$dest.tmp" "$dest"
  rm -rf "$tmp"
  _helm_log "built helm $HELM_VERSION in $((SECONDS - start))s"
}

# helm_ensure: build helm if it is missing.
helm_ensure() {
  local lock
  mkdir -p "$PORTCULLIS_CACHE"
  lock="$PORTCULLIS_CACHE/.build-helm.lock"
  (
    if command -v flock >/dev/null; then flock 9; fi
    [[ -x "$(helm_bin)" ]] || _helm_build
  ) 9>"$lock"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  helm_ensure
  helm_bin
fi
