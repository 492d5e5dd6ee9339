#!/usr/bin/env python3
"""Turns the raw results of e2e/bench/run into markdown tables and writes them into
docs/benchmarks.md between `<!-- results:begin -->` and `<!-- results:end -->` (compare,
scale, churn) and between `<!-- cost:begin -->` and `<!-- cost:end -->` (the cost part);
a block is rewritten only when its parts ran, and the prose around the markers is kept.
With OUT = "-" the tables go to stdout.

usage: report.py RESULTS_DIR OUT
"""

import json
import os
import re
import statistics
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
COST_BEGIN, COST_END = "<!-- cost:begin -->", "<!-- cost:end -->"
# The current build's variants in the cost part (after the baselines).
COST_VARIANTS = [
    ("log-off", "now, decision log off (`authorize_log_fields: []`)"),
    ("log-on", "now, decision log on (text, the config file's default)"),
    ("log-on-json", "now, decision log on (`log_format: json`, the chart's default)"),
]
TARGETS = [
    ("1-upstream", "1. upstream direct (ceiling, plain HTTP)"),
    ("2-nginx", "2. nginx, TLS reverse proxy, no auth"),
    ("3-oauth2-proxy", "3. oauth2-proxy, TLS, cookie session, group check"),
    ("4-nginx-auth_request", "4. nginx `auth_request` → oauth2-proxy, cookie session"),
    ("5-portcullis-auth", "5. **Portcullis, cookie session, group policy**"),
    ("6-portcullis-public", "6. **Portcullis, public route**"),
]
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(path):
    t = path.read_text()
    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", t, re.M)
        out[f"p{q}"] = ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    out["sockerr"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"(\d+) requests in", t)
    out["requests"] = int(m.group(1)) if m else 0
    cpu = path.with_suffix(".cpu")
    if cpu.exists() and out["requests"]:
        out["cpu_us"] = float(cpu.read_text()) / out["requests"] * 1e6
    io = path.with_suffix(".io")
    if io.exists() and io.read_text().split():
        out["io"] = [int(v) for v in io.read_text().split()]
    m = re.search(r"^churn: (.*)$", t, re.M)
    if m:
        out["churn"] = dict(kv.split("=", 1) for kv in m.group(1).split())
    return out


def runs(results, name):
    files = sorted((results / "wrk").glob(f"{name}.*.txt"),
                   key=lambda p: int(p.name.rsplit(".", 2)[1]))
    return [parse_wrk(p) for p in files]


def spread(values, fmt):
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


def rps_fmt(v):
    return f"{v:,.0f}"


def lat_fmt(v):
    return f"{v:.2f}"


def cpu_fmt(v):
    return f"{v:.1f}"


def ratio_fmt(v):
    return f"{v:.2f}×"


def compare_section(results):
    rows = {name: runs(results, name) for name, _ in TARGETS}
    if not any(rows.values()):
        return []
    out = ["### Side by side", "",
           "Median of the rounds, (min–max) across rounds. Latency in ms. "
           "Errors = non-2xx/3xx responses + socket errors, summed over all rounds. "
           "CPU/request = user+system time of the proxy's processes (for 4.: nginx and "
           "oauth2-proxy; for 1.: the upstream) during the run, divided by the requests "
           "served: it is less sensitive than requests/s to other load on a shared machine.", "",
           "| target | requests/s | p50 ms | p99 ms | proxy CPU µs/request | errors |",
           "|---|---:|---:|---:|---:|---:|"]
    for name, label in TARGETS:
        r = rows[name]
        if not r:
            continue
        out.append(
            f"| {label} | {spread([x['rps'] for x in r], rps_fmt)} "
            f"| {spread([x['p50'] for x in r], lat_fmt)} | {spread([x['p99'] for x in r], lat_fmt)} "
            f"| {spread([x['cpu_us'] for x in r if 'cpu_us' in x], cpu_fmt)} "
            f"| {sum(x['non2xx'] + x['sockerr'] for x in r)} |")
    out += ["", "### Ratios (requests/s)", "",
            "Median ratio; (min–max) of the ratio within each round, where both ran "
            "back to back. Above 1.0× Portcullis is faster.", "",
            "| Portcullis | vs 2. nginx (no auth) | vs 3. oauth2-proxy | vs 4. nginx + oauth2-proxy |",
            "|---|---:|---:|---:|"]
    for mine, label in (("5-portcullis-auth", "5. with sign-in + group policy"),
                        ("6-portcullis-public", "6. public route")):
        cells = []
        for other in ("2-nginx", "3-oauth2-proxy", "4-nginx-auth_request"):
            a, b = rows[mine], rows[other]
            per_round = [x["rps"] / y["rps"] for x, y in zip(a, b) if y["rps"]]
            cells.append(spread(per_round, ratio_fmt))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    cpu = {n: [x["cpu_us"] for x in rows[n] if "cpu_us" in x] for n, _ in TARGETS}
    if cpu.get("5-portcullis-auth") and cpu.get("2-nginx"):
        out += ["", "Proxy CPU per request relative to Portcullis (above 1.0× the other proxy "
                "spends more CPU per request than Portcullis):", "",
                "| Portcullis | 2. nginx | 3. oauth2-proxy | 4. nginx + oauth2-proxy |",
                "|---|---:|---:|---:|"]
        for mine, label in (("5-portcullis-auth", "5. with sign-in + group policy"),
                            ("6-portcullis-public", "6. public route")):
            cells = []
            for other in ("2-nginx", "3-oauth2-proxy", "4-nginx-auth_request"):
                if cpu[mine] and cpu[other]:
                    cells.append(ratio_fmt(statistics.median(cpu[other]) / statistics.median(cpu[mine])))
                else:
                    cells.append("–")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    p99 = {n: statistics.median([x["p99"] for x in rows[n]]) for n, _ in TARGETS if rows[n]}
    if "5-portcullis-auth" in p99 and "2-nginx" in p99:
        out += ["", "p99 latency ratio (lower is better for Portcullis): "
                + ", ".join(f"5 vs {o.split('-', 1)[0]}: {p99['5-portcullis-auth'] / p99[o]:.2f}×"
                            for o in ("2-nginx", "3-oauth2-proxy", "4-nginx-auth_request") if o in p99)]
    cookies = []
    for f, label in (("portcullis_cookie_bytes", "Portcullis"),
                     ("oauth2_proxy_cookie_bytes", "oauth2-proxy")):
        if (results / f).exists():
            cookies.append(f"{label} {(results / f).read_text().strip()} B")
    if cookies:
        out += ["", "Cookie header sent by wrk (from the real sign-in): " + ", ".join(cookies) + "."]
    return out


def scale_section(results):
    out = []
    tsv = results / "scale.tsv"
    if tsv.exists() and tsv.read_text().strip():
        out += ["### Scale: routing table and memory", "",
                "Fresh process per size; half the filler routes public, half group-checked. "
                "Build time as logged (`routing table applied … build_ms`) and as exported "
                "(`portcullis_routing_table_build_seconds_sum`); RSS from /proc after the "
                "first table is applied.", "",
                "| routes | table build (log) | table build (metric) | RSS |",
                "|---:|---:|---:|---:|"]
        for line in tsv.read_text().splitlines():
            count, build_ms, metric_s, rss, _ = line.split("\t")
            metric = f"{float(metric_s) * 1000:.2f} ms" if metric_s else "–"
            out.append(f"| {int(count):,} | {float(build_ms):.2f} ms | {metric} "
                       f"| {int(rss) / 1024:.1f} MiB |")
    a, b = runs(results, "scale-10-routes"), runs(results, "scale-10000-routes")
    if a and b:
        per_round = [y["rps"] / x["rps"] for x, y in zip(a, b)]
        out += ["", "Throughput on a public route, same wrk settings:", "",
                "| table | requests/s | p50 ms | p99 ms | CPU µs/request | errors |",
                "|---|---:|---:|---:|---:|---:|"]
        for label, r in (("10 routes", a), ("10,000 routes", b)):
            out.append(f"| {label} | {spread([x['rps'] for x in r], rps_fmt)} "
                       f"| {spread([x['p50'] for x in r], lat_fmt)} "
                       f"| {spread([x['p99'] for x in r], lat_fmt)} "
                       f"| {spread([x['cpu_us'] for x in r if 'cpu_us' in x], cpu_fmt)} "
                       f"| {sum(x['non2xx'] + x['sockerr'] for x in r)} |")
        out += ["", f"10,000 routes / 10 routes: {spread(per_round, ratio_fmt)}."]
    idle = results / "idle.tsv"
    if idle.exists():
        out += ["", "### Memory per idle keep-alive connection", "",
                "TLS connections opened by `e2e/bench/idle_conns.py`, one request each, then held "
                "idle; RSS (nginx: master + workers) before and after.", "",
                "| server | connections | RSS before | RSS after | per connection |",
                "|---|---:|---:|---:|---:|"]
        per = {}
        for line in idle.read_text().splitlines():
            name, before, after, opened, _ = line.split("\t")
            before, after, opened = int(before), int(after), int(opened)
            per[name] = (after - before) * 1024 / max(opened, 1)
            out.append(f"| {name} | {opened:,} | {before / 1024:.1f} MiB | {after / 1024:.1f} MiB "
                       f"| {per[name] / 1024:.1f} KiB |")
        if "portcullis" in per and per.get("nginx"):
            out += ["", f"Portcullis / nginx per idle connection: {per['portcullis'] / per['nginx']:.2f}×."]
    return out


def churn_section(results):
    r = runs(results, "churn")
    f = results / "churn.json"
    if not r or not f.exists():
        return []
    w, c = r[0], json.loads(f.read_text())
    ch = w.get("churn", {})
    builds = "–"
    metrics = results / "churn.metrics"
    if metrics.exists():
        m = metrics.read_text()
        cnt = re.search(r"^portcullis_routing_table_build_seconds_count\S*\s+(\S+)", m, re.M)
        tot = re.search(r"^portcullis_routing_table_build_seconds_sum\S*\s+(\S+)", m, re.M)
        before = (results / "churn.builds_before").read_text().strip() or "0"
        if cnt and tot:
            n = float(cnt.group(1)) - float(before)
            builds = (f"{n:.0f} table rebuilds during the run "
                      f"(mean build over the process: {float(tot.group(1)) / float(cnt.group(1)) * 1000:.3f} ms)")
    return ["### Churn through the Kubernetes controller", "",
            "`portcullis run --kubernetes` against the e2e test cluster (real kube-apiserver + etcd); "
            f"wrk on a public Ingress route while `e2e/bench/churn.py` changed Ingresses and "
            f"IdentityPolicies every {c['interval_ms']:.0f} ms for {c['seconds']} s.", "",
            "| measure | value |", "|---|---:|",
            f"| changes applied (API server accepted) | {c['changes']} ({', '.join(f'{k} {v}' for k, v in sorted(c['by_kind'].items()))}) |",
            f"| changes refused by the API server | {c['failed']} |",
            f"| tick lateness p50 / max | {c['lag_p50_ms']} ms / {c['lag_max_ms']} ms |",
            f"| requests under churn | {ch.get('total', w['requests'])} ({w['rps']:,.0f}/s) |",
            f"| **non-2xx responses** | **{ch.get('non2xx', '?')}** (statuses: {ch.get('statuses', '?')}) |",
            f"| socket errors | {ch.get('socket_errors', w['sockerr'])} |",
            f"| distinct `X-Bench-Gen` values seen by wrk | {ch.get('gens', '?')} |",
            f"| rebuilds | {builds} |",
            f"| p50 / p99 | {lat_fmt(w['p50'])} ms / {lat_fmt(w['p99'])} ms |"]


# The gate (issue 13): the current build with the decision log off against the first
# baseline, on the authenticated route; instructions when callgrind ran, else CPU.
LIMIT = float(os.environ.get("BENCH_COST_LIMIT", "1.03"))
GATE = {}


def pct(ratio):
    return f"{(ratio - 1) * 100:+.1f}%"


def cost_section(results):
    base_file = results / "cost_baselines.tsv"
    if not base_file.exists():
        return []
    baselines = [line.split("\t") for line in base_file.read_text().splitlines() if line]
    short = lambda s: s if len(s) <= 60 else s[:59].rstrip() + "…"  # noqa: E731
    variants = [(name, f"baseline `{sha[:7]}` ({short(subject)})")
                for name, sha, subject in baselines]
    variants += COST_VARIANTS
    base = baselines[0][0]
    out = []

    # Instructions (callgrind): windows of SMALL and N requests per repeat, in order.
    cg = results / "callgrind.tsv"
    per_req = {}
    if cg.exists() and cg.read_text().strip():
        windows = {}
        for line in cg.read_text().splitlines():
            name, target, count, ir = line.split("\t")
            windows.setdefault((name, target), []).append((int(count), int(ir)))
        for key, ws in windows.items():
            small = min(c for c, _ in ws)
            smalls = [ir for c, ir in ws if c == small]
            larges = [(c, ir) for c, ir in ws if c != small]
            per_req[key] = [(ir - s) / (c - small) for (c, ir), s in zip(larges, smalls)]
        n = max(c for ws in windows.values() for c, _ in ws)
        out += ["Instructions per request (callgrind, user space of every thread): the proxy "
                f"under valgrind, {n:,} sequential GETs on one keep-alive TLS connection "
                "between `callgrind_control --zero` and `--dump`, minus a window of "
                f"{min(c for ws in windows.values() for c, _ in ws)} (the handshake cancels "
                "out); median (min–max) of the repeats, and the ratio to the baseline. "
                "Deterministic for a binary and its inputs, whatever else the machine runs.", "",
                "| build | authenticated (cookie, group policy) | vs baseline "
                "| public route | vs baseline |", "|---|---:|---:|---:|---:|"]
        for name, label in variants:
            cells = []
            for target in ("auth", "public"):
                v = per_req.get((name, target))
                b = per_req.get((base, target))
                cells.append(spread(v, lambda x: f"{x:,.0f}") if v else "–")
                cells.append(pct(statistics.median(v) / statistics.median(b)) if v and b else "–")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        off, b = per_req.get(("log-off", "auth")), per_req.get((base, "auth"))
        if off and b:
            GATE.update(measure="callgrind instructions per authenticated request",
                        ratio=statistics.median(off) / statistics.median(b))
        on = per_req.get(("log-on", "auth"))
        if off and on:
            d = statistics.median(on) - statistics.median(off)
            out += [f"Decision log on (text) vs off: {d:+,.0f} instructions per authenticated "
                    f"request ({pct(statistics.median(on) / statistics.median(off))}).", ""]

    # Timed rounds: CPU per request, round by round against the baseline.
    timed = {(name, t): runs(results, f"cost-{name}-{t}") for name, _ in variants
             for t in ("auth", "public")}
    if any(timed.values()):
        rounds = max(len(r) for r in timed.values())
        out += [f"Proxy CPU per request (user + system, /proc) over {rounds} interleaved wrk "
                "rounds (the order of the builds rotated each round); median (min–max); the "
                "ratio is the median of the per-round ratios to the baseline. Write calls: "
                "write-family system calls per request (/proc/PID/io `syscw`), all threads.", "",
                "| build | auth CPU µs | vs baseline | public CPU µs | vs baseline "
                "| auth req/s | public req/s | write calls/request (auth) |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, label in variants:
            cells = []
            for t in ("auth", "public"):
                r, b = timed[(name, t)], timed[(base, t)]
                cells.append(spread([x["cpu_us"] for x in r if "cpu_us" in x], cpu_fmt))
                ratios = [x["cpu_us"] / y["cpu_us"] for x, y in zip(r, b)
                          if "cpu_us" in x and "cpu_us" in y]
                cells.append(pct(statistics.median(ratios)) if ratios and name != base else "–")
            for t in ("auth", "public"):
                cells.append(spread([x["rps"] for x in timed[(name, t)]], rps_fmt))
            writes = [x["io"][1] / x["requests"] for x in timed[(name, "auth")]
                      if "io" in x and x["requests"]]
            cells.append(spread(writes, lambda v: f"{v:.2f}"))
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        if "ratio" not in GATE:
            ratios = [x["cpu_us"] / y["cpu_us"] for x, y in zip(timed[("log-off", "auth")],
                                                               timed[(base, "auth")])
                      if "cpu_us" in x and "cpu_us" in y]
            if ratios:
                GATE.update(measure="proxy CPU per authenticated request (median of the "
                            "per-round ratios)", ratio=statistics.median(ratios))
        errors = sum(x["non2xx"] + x["sockerr"] for r in timed.values() for x in r)
        out += ["", f"Errors (non-2xx + socket errors) over all timed runs: {errors}.", ""]

    if "ratio" in GATE:
        GATE["ok"] = GATE["ratio"] <= LIMIT
        out += [f"**Gate: {GATE['measure']}, decision log off, against `{baselines[0][1][:7]}`: "
                f"{GATE['ratio']:.3f}× ({pct(GATE['ratio'])}; limit {pct(LIMIT)}) — "
                f"{'pass' if GATE['ok'] else 'FAIL'}.**", ""]
    meta = read_meta(results)
    out += [f"Run {meta.get('date')} on {meta.get('nproc')} shared CPUs; current build "
            f"{meta.get('portcullis')}; baselines: "
            + ", ".join(f"`{sha[:12]}`" for _, sha, _ in baselines)
            + f"; {meta.get('cost_settings')}."]
    return out


def read_meta(results):
    f = results / "meta.env"
    if not f.exists():
        return {}
    return dict(line.split("=", 1) for line in f.read_text().splitlines() if "=" in line)


def meta_section(results):
    meta = dict(line.split("=", 1) for line in (results / "meta.env").read_text().splitlines()
                if "=" in line)
    elapsed = (results / "elapsed_seconds").read_text().strip() if (results / "elapsed_seconds").exists() else "?"
    return ["### Machine and versions", "",
            f"- Run {meta.get('date')}, script time {int(elapsed) // 60} min {int(elapsed) % 60} s "
            "(installs and builds included when they ran).",
            f"- Machine: {meta.get('nproc')} CPUs ({meta.get('cpu')}), {meta.get('memory')}, "
            f"kernel {meta.get('kernel')}; shared with other work, so expect noise — "
            "compare ratios within a round, not absolute numbers across machines.",
            f"- nginx {meta.get('nginx')}; {meta.get('oauth2_proxy')}; {meta.get('portcullis')}; "
            f"{meta.get('wrk')}; node {meta.get('node')}; {meta.get('openssl')}.",
            f"- wrk: {meta.get('settings')}; idle connections: {meta.get('idle_connections')}; "
            f"churn: {meta.get('churn_seconds')} s."]


def block(begin, end, sections):
    if not sections:
        return None
    body = []
    for part in sections:
        body += part + [""]
    return "\n".join([begin, ""] + body + [end])


def replace_block(old, begin, end, text):
    if begin not in old or end not in old:
        old = old.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + text + tail


def main():
    results, out = Path(sys.argv[1]), sys.argv[2]
    parts = [p for p in (compare_section(results), scale_section(results), churn_section(results)) if p]
    blocks = []
    if parts:
        blocks.append((BEGIN, END, block(BEGIN, END, parts + [meta_section(results)])))
    cost = cost_section(results)
    if cost:
        blocks.append((COST_BEGIN, COST_END, block(COST_BEGIN, COST_END, [cost])))
    if out == "-":
        print("\n\n".join(text for _, _, text in blocks))
        gate()
        return
    path = Path(out)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    for begin, end, new in blocks:
        text = replace_block(text, begin, end, new)
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)
    gate()


def gate():
    """Exits 3 when the cost gate ran and failed (after the report is written)."""
    if "ratio" not in GATE:
        return
    verdict = "pass" if GATE["ok"] else "FAIL"
    print(f"cost gate: {GATE['measure']}, log off / baseline = {GATE['ratio']:.4f} "
          f"(limit {LIMIT}): {verdict}", file=sys.stderr)
    if not GATE["ok"]:
        sys.exit(3)


if __name__ == "__main__":
    main()
