#!/usr/bin/env bash
# Smoke test of the Okta-shaped OpenID provider: makes a throwaway CA and a 127.0.0.1/localhost
# leaf with openssl, then runs smoke.mjs (starts server.js, runs the code + PKCE flow, refresh,
# revoke, logout against both issuer forms). Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -d "$here/node_modules/oidc-provider" ]; then
  npm ci --prefix "$here" --no-audit --no-fund
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 1 \
  -subj "/CN=oidc smoke test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$tmp/leaf.key" -out "$tmp/leaf.csr" \
  -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -out "$tmp/leaf.pem" -days 1 -extfile "$tmp/ext.cnf" 2>/dev/null
node "$here/smoke.mjs" --cert "$tmp/leaf.pem" --key "$tmp/leaf.key" --ca "$tmp/ca.pem"
