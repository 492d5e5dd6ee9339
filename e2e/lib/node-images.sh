#!/usr/bin/env bash
# Container images for the node tier, built locally (no registry can be reached here) as
# OCI image-layout archives of one uncompressed layer each, for
# `ctr -n k8s.io images import`:
#
#   portcullis.test/pause:1        the pod sandbox process (e2e/images/pause)
#   portcullis.test/echo:1         the tests' echo server (e2e/images/echo)
#   portcullis.test/portcullis:test  the Dockerfile final stage's layout: /portcullis,
#                                  the CA bundle, user 65532, run/--kubernetes as CMD.
#                                  Made from a binary the caller names (the tests use
#                                  the debug build, stripped of debug info) and the
#                                  shared libraries it links (what distroless/cc has).
#
# Usage: e2e/lib/node-images.sh base OUTDIR            pause + echo archives
#        e2e/lib/node-images.sh portcullis BIN OUTDIR  the Portcullis archive
#        source e2e/lib/node-images.sh                 defines the functions only
# Each prints the archive paths. Go programs are built with the local toolchain (standard
# library only) and cached under ${PORTCULLIS_CACHE}/images keyed by a hash of their
# source.

set -euo pipefail

_IMG_E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORTCULLIS_CACHE="${PORTCULLIS_CACHE:-$HOME/.cache/portcullis}"
PAUSE_IMAGE=portcullis.test/pause:1
ECHO_IMAGE=portcullis.test/echo:1
PORTCULLIS_IMAGE=portcullis.test/portcullis:test

_img_log() { printf '[images] %s\n' "$*" >&2; }

_img_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
  esac
}

# _img_blob DIR FILE -> moves FILE into DIR/blobs/sha256/<digest>; prints "digest size".
_img_blob() {
  local dir="$1" file="$2" digest size
  digest="$(sha256sum "$file" | cut -d' ' -f1)"
  size="$(stat -c %s "$file")"
  mkdir -p "$dir/blobs/sha256"
  mv -f "$file" "$dir/blobs/sha256/$digest"
  printf '%s %s\n' "$digest" "$size"
}

# oci_archive REF ROOTFS OUT CONFIG_JSON
# Writes OUT, an OCI image layout tar holding one image named REF whose single layer is
# ROOTFS (owned by root, mtime 0) and whose runtime config ("config" of the image
# config) is CONFIG_JSON.
oci_archive() {
  local ref="$1" root="$2" out="$3" runtime="$4" work arch config manifest
  local ldigest lsize cdigest csize mdigest msize
  work="$(mktemp -d)"
  arch="$(_img_arch)"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer" .
  read -r ldigest lsize < <(_img_blob "$work" "$work/layer")
  config="$work/config"
  printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$runtime" "$ldigest" >"$config"
  read -r cdigest csize < <(_img_blob "$work" "$config")
  manifest="$work/manifest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cdigest" "$csize" "$ldigest" "$lsize" >"$manifest"
  read -r mdigest msize < <(_img_blob "$work" "$manifest")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdigest" "$msize" "$arch" "$ref" "${ref##*:}" >"$work/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  mkdir -p "$(dirname "$out")"
  tar --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" oci-layout index.json blobs
  mv -f "$out.tmp" "$out"
  rm -rf "$work"
}

# _img_go NAME -> path of the cached static binary built from e2e/images/NAME.
_img_go() {
  local name="$1" src="$_IMG_E2E_DIR/images" hash bin
  hash="$(cat "$src/go.mod" "$src/$name"/*.go | sha256sum | cut -c1-16)"
  bin="$PORTCULLIS_CACHE/images/$name-$hash/$name"
  if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null || { _img_log "go is needed to build the $name image"; return 1; }
    mkdir -p "$(dirname "$bin")"
    (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod \
      nice -n 19 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" "./$name") ||
      { _img_log "building e2e/images/$name failed"; return 1; }
    mv -f "$bin.tmp" "$bin"
  fi
  printf '%s\n' "$bin"
}

# _img_rootfs_base DIR: /etc/passwd and /etc/group with root and nonroot (65532), /tmp.
_img_rootfs_base() {
  mkdir -p "$1/etc" "$1/tmp" "$1/home/nonroot"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}

# images_base OUTDIR: the pause and echo archives (rebuilt only when their source changes).
images_base() {
  local out="$1" name bin root ref
  mkdir -p "$out"
  for name in pause echo; do
    bin="$(_img_go "$name")"
    ref="$PAUSE_IMAGE"
    [[ $name == echo ]] && ref="$ECHO_IMAGE"
    root="$(mktemp -d)"
    _img_rootfs_base "$root"
    install -m 0755 "$bin" "$root/$name"
    if [[ $name == pause ]]; then
      oci_archive "$ref" "$root" "$out/$name.tar" '{"Entrypoint":["/pause"],"User":"65535:65535"}'
    else
      oci_archive "$ref" "$root" "$out/$name.tar" \
        '{"Entrypoint":["/echo"],"User":"65532:65532","ExposedPorts":{"8080/tcp":{}}}'
    fi
    rm -rf "$root"
    printf '%s\n' "$out/$name.tar"
  done
}

# images_portcullis BIN OUTDIR: the Portcullis archive, laid out as the Dockerfile's
# final stage (distroless/cc: glibc, libgcc_s, CA bundle, nonroot) around BIN.
images_portcullis() {
  local bin="$1" out="$2" root lib dest
  [[ -x "$bin" ]] || { _img_log "no portcullis binary at $bin (cargo build first)"; return 1; }
  root="$(mktemp -d)"
  _img_rootfs_base "$root"
  # Debug info makes the debug build several times larger; the code is the same.
  objcopy --strip-debug "$bin" "$root/portcullis" 2>/dev/null || cp "$bin" "$root/portcullis"
  chmod 0755 "$root/portcullis"
  # Every shared library the binary loads, and the dynamic loader, at the same paths.
  while read -r lib; do
    [[ -n "$lib" ]] || continue
    dest="$root$lib"
    mkdir -p "$(dirname "$dest")"
    cp -L "$lib" "$dest"
  done < <(ldd "$bin" | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]*ld-linux/{print $1}')
  if [[ ! -e "$root/lib64/ld-linux-x86-64.so.2" && -e /lib64/ld-linux-x86-64.so.2 ]]; then
    mkdir -p "$root/lib64"
    cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
  fi
  mkdir -p "$root/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  oci_archive "$PORTCULLIS_IMAGE" "$root" "$out/portcullis.tar" \
    '{"Entrypoint":["/portcullis"],"Cmd":["run","--kubernetes","--config","/etc/portcullis/config.yaml"],"User":"65532:65532","ExposedPorts":{"8443/tcp":{},"8080/tcp":{},"9090/tcp":{}}}'
  rm -rf "$root"
  printf '%s\n' "$out/portcullis.tar"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    base) images_base "${2:?OUTDIR}" ;;
    portcullis) images_portcullis "${2:?BIN}" "${3:?OUTDIR}" ;;
    *) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
fi
