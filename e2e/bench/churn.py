#!/usr/bin/env python3
"""Changes routes and policies through the Kubernetes API on a fixed cadence, for the
churn test in e2e/bench/run (the product's real change path: API server -> watch ->
controller -> routing table swap).

Every tick (default 100 ms) makes one change, in a rotation of eight:
  the load Ingress's `set-response-headers` (X-Bench-Gen: <tick>, which wrk's count.lua
  sees arriving), its IdentityPolicy's rules (two deny rules that never match GET /),
  a new Ingress on another host, the load Ingress's path list (an extra Exact path
  added or removed), and the deletion of the oldest extra Ingress.
Talks to the API server with the admin token from `e2e/cluster env`
(PORTCULLIS_KUBE_SERVER, PORTCULLIS_KUBE_TOKEN, PORTCULLIS_KUBE_CA), over one keep-alive
connection: a kubectl process per change would cost more CPU than the change itself on a
small machine and would not keep a 100 ms cadence.

Prints one JSON line: changes made, failures, by kind, and how late ticks ran.
"""

import argparse
import json
import os
import sys
import time

import requests

INGRESS = "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"
POLICY = "/apis/portcullis.dev/v1alpha1/namespaces/{ns}/identitypolicies"
MERGE = {"Content-Type": "application/merge-patch+json"}
POLICIES = [
    [{"deny": {"or": [{"http_method": {"is": "DELETE"}}]}}],
    [{"deny": {"or": [{"http_path": {"starts_with": "/admin"}}, {"http_method": {"is": "PUT"}}]}}],
]


def backend(port):
    return {"service": {"name": "upstream", "port": {"number": port}}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--upstream-port", type=int, required=True)
    a = ap.parse_args()

    base = os.environ["PORTCULLIS_KUBE_SERVER"]
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`; no proxies either
    s.verify = os.environ["PORTCULLIS_KUBE_CA"]
    s.headers["Authorization"] = "Bearer " + os.environ["PORTCULLIS_KUBE_TOKEN"]
    ing = base + INGRESS.format(ns=a.namespace)
    pol = base + POLICY.format(ns=a.namespace)
    root = {"path": "/", "pathType": "Prefix", "backend": backend(a.upstream_port)}

    extras = []
    counts, failed, lags, first_error = {}, 0, [], None
    ticks = int(a.seconds / a.interval)
    start = time.monotonic()
    for i in range(ticks):
        due = start + i * a.interval
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        lags.append(max(0.0, time.monotonic() - due))
        step = i % 8
        if step in (0, 4):
            kind = "response-header"
            r = s.patch(f"{ing}/load", headers=MERGE, data=json.dumps({"metadata": {"annotations": {
                "portcullis.dev/set-response-headers": f'{{X-Bench-Gen: "{i}"}}'}}}))
        elif step in (1, 5):
            kind = "policy"
            r = s.patch(f"{pol}/load-extra", headers=MERGE,
                        data=json.dumps({"spec": {"rules": POLICIES[(i // 4) % 2]}}))
        elif step == 2:
            kind = "ingress-create"
            name = f"extra-{i}"
            r = s.post(ing, json={
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "annotations": {
                    "portcullis.dev/allowed-groups": "admins"}},
                "spec": {"ingressClassName": "portcullis", "rules": [{
                    "host": f"e{i}.bench.test",
                    "http": {"paths": [dict(root)]}}]}})
            if r.ok:
                extras.append(name)
        elif step == 6:
            kind = "ingress-delete"
            if len(extras) > 3:
                r = s.delete(f"{ing}/{extras.pop(0)}")
            else:
                kind = "response-header"
                r = s.patch(f"{ing}/load", headers=MERGE, data=json.dumps({"metadata": {
                    "annotations": {"portcullis.dev/set-response-headers": f'{{X-Bench-Gen: "{i}"}}'}}}))
        else:
            kind = "paths"
            paths = [root] if (i // 8) % 2 else [
                root, {"path": f"/other-{i}", "pathType": "Exact", "backend": backend(a.upstream_port)}]
            r = s.patch(f"{ing}/load", headers=MERGE, data=json.dumps({"spec": {"rules": [{
                "host": "churn.bench.test", "http": {"paths": paths}}]}}))
        if r.ok:
            counts[kind] = counts.get(kind, 0) + 1
        else:
            failed += 1
            first_error = first_error or f"{kind}: {r.status_code} {r.text[:300]}"
    elapsed = time.monotonic() - start
    lags.sort()
    print(json.dumps({
        "changes": sum(counts.values()), "failed": failed, "by_kind": counts,
        "seconds": round(elapsed, 1), "interval_ms": a.interval * 1000,
        "lag_p50_ms": round(lags[len(lags) // 2] * 1000, 1),
        "lag_max_ms": round(lags[-1] * 1000, 1), "first_error": first_error,
    }))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
