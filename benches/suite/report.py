"""Turns the suite's JSON lines into the Markdown report (stdout and results.md)."""

import json
import os
import platform
import subprocess
import sys

results_path, out_path, placement, dur, warm, conns, upload_mib, rate, idle = sys.argv[1:10]
rows = [json.loads(line) for line in open(results_path) if line.strip()]

TITLES = {
    1: "1. Plain reverse proxying, small GETs (wrk)",
    2: "2. Intercepted HTTPS through CONNECT, keep-alive",
    3: "3. Inspected 2 KiB CreateTweet posts (through interception)",
    4: f"4. Large uploads, {upload_mib} MiB bodies over TLS",
    5: "5. Rule-set scale: decision time per 2 KiB post (criterion)",
    6: "6. TLS handshakes per second (full handshakes, client does not verify)",
    7: f"7. Small GETs at {rate} req/s alongside {idle} idle keep-alive connections",
    8: "8. Intercepted HTTPS on the transparent TLS listener, small GETs (h2load)",
}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def num(x, digits=0):
    return f"{x:,.{digits}f}"


def ms(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def mib(kib):
    return f"{kib / 1024:.0f} MiB" if kib else "–"


def ref_of(scenario, role="ref"):
    """The reference row of a scenario (scenario 4 has one per placement: ref, ref2)."""
    for r in rows:
        if r["scenario"] == scenario and r["role"] == role:
            return r
    return None


def find(scenario, prefix):
    for r in rows:
        if r["scenario"] == scenario and r["candidate"].startswith(prefix):
            return r
    return None


lines = []
w = lines.append
w("| scenario | candidate | throughput | p50 ms | p99 ms | p99.9 ms | peak RSS | ratio |")
w("|---|---|---:|---:|---:|---:|---:|---:|")
for s in sorted({r["scenario"] for r in rows}):
    first = True
    for r in [r for r in rows if r["scenario"] == s]:
        ref = ref_of(s, "ref2" if r["role"].endswith("2") else "ref")
        res = r["result"]
        title = TITLES[s] if first else ""
        first = False
        name = r["candidate"] + (" **(reference)**" if r["role"] in ("ref", "ref2") else "")
        if s == 5:
            t = res["median_ns"] / 1000
            ratio = t / (ref["result"]["median_ns"] / 1000) if ref else 0
            w(f"| {title} | {name} | {t:.1f} µs/decision | | | | | {ratio:.2f}× time |")
            continue
        err = res.get("errors", 0) + res.get("non2xx", 0)
        errs = f" ({err} errors)" if err else ""
        if s == 4:
            thr = f"{num(res['mib_per_s'])} MiB/s"
            ratio = res["mib_per_s"] / ref["result"]["mib_per_s"] if ref else 0
            mem = f"{mib(r['mem_kib'])} (1 MiB bodies: {mib(r.get('mem_small_kib', 0))})"
        else:
            unit = "handshakes/s" if s == 6 else "req/s"
            thr = f"{num(res['rps'])} {unit}"
            paced_row = r["role"].startswith("paced") or s == 7
            if paced_row:
                thr = f"{num(res['rps'])} req/s (paced)"
            if res.get("idle"):
                thr += f", {res.get('idle_alive', 0):,} of {res['idle']:,} idle still open"
            ratio = res["rps"] / ref["result"]["rps"] if ref and not paced_row else None
            mem = mib(r["mem_kib"])
        if s == 6 and "minted" in r:
            thr += f", {int(float(r['minted'])):,} minted"
        rtxt = f"{ratio:.2f}×" if ratio is not None else ""
        w(f"| {title} | {name}{errs} | {thr} | {ms(res['p50_ms'])} | {ms(res['p99_ms'])} "
          f"| {ms(res['p999_ms'])} | {mem} | {rtxt} |")

# Targets of issue 9.
targets = []


def target(name, ok, detail):
    targets.append(f"- {'met' if ok else '**missed**'} — {name}: {detail}")


gw, ngx = find(1, "permeable"), find(1, "nginx proxy_pass")
if gw and ngx:
    a, b = gw["result"], ngx["result"]
    target("scenario 1, ≥ 1.0× nginx req/s and p99 no worse",
           a["rps"] >= b["rps"] and a["p99_ms"] <= b["p99_ms"],
           f"{a['rps'] / b['rps']:.2f}× nginx req/s; p99 {ms(a['p99_ms'])} ms vs {ms(b['p99_ms'])} ms")
gw, mitm = find(2, "permeable"), find(2, "mitmdump")
if gw and mitm:
    x = gw["result"]["rps"] / max(mitm["result"]["rps"], 1e-9)
    target("scenario 2, ≥ 20× mitmproxy req/s", x >= 20, f"{x:.1f}× mitmdump")
empty, full = find(3, "permeable, empty"), find(3, "permeable, default rule pack")
paced, direct = find(3, "permeable, default pack, " + rate), find(3, "upstream directly")
if empty and full:
    cost = 1 - full["result"]["rps"] / empty["result"]["rps"]
    target("scenario 3, inspection costs ≤ 10% of throughput", cost <= 0.10,
           f"{cost * 100:.1f}% (default pack vs empty rule set)")
if paced and direct:
    added = paced["result"]["p99_ms"] - direct["result"]["p99_ms"]
    target("scenario 3, gateway-added p99 ≤ 1 ms", added <= 1.0,
           f"{added:.2f} ms at {rate} req/s (p99 {ms(paced['result']['p99_ms'])} ms through "
           f"the gateway vs {ms(direct['result']['p99_ms'])} ms direct)")
for r in rows:
    d4 = ref_of(4, "ref2" if r["role"].endswith("2") else "ref")
    if r["scenario"] == 4 and r["role"].startswith("candidate") and d4:
        growth = (r["mem_kib"] - r.get("mem_small_kib", 0)) / 1024
        x = r["result"]["mib_per_s"] / d4["result"]["mib_per_s"]
        # The nginx doing the same job best: L4 pass-through for the tunnel, TLS
        # termination for interception.
        two = "2" if r["role"].endswith("2") else ""
        peer = ref_of(4, ("l4" if "tunnel" in r["candidate"] else "tls") + two)
        versus = ""
        if peer:
            px = peer["result"]["mib_per_s"] / d4["result"]["mib_per_s"]
            versus = (f" ({peer['candidate'].split(' (')[0]} here: {px * 100:.1f}% of direct; "
                      f"permeable {r['result']['mib_per_s'] / peer['result']['mib_per_s']:.2f}× it)")
        target(f"scenario 4, {r['candidate']}: memory flat, throughput ≥ 80% of direct",
               growth < 16 and x >= 0.8,
               f"peak RSS +{growth:.1f} MiB from 1 MiB to {upload_mib} MiB bodies; "
               f"{x * 100:.1f}% of direct{versus}")
d5, b5 = ref_of(5), find(5, "default_plus")
if d5 and b5:
    x = b5["result"]["median_ns"] / d5["result"]["median_ns"]
    target("scenario 5, decision time grows ≤ 2× with the big pack", x <= 2, f"{x:.2f}×")

# Intercepted HTTPS against nginx terminating TLS, per protocol ("one request path").
for proto, role, ref_role, goal in (("HTTP/1.1", "candidate", "ref", 0.8),
                                    ("HTTP/2", "candidate2", "ref2", 1.5)):
    c8, n8 = ref_of(8, role), ref_of(8, ref_role)
    if c8 and n8:
        x = c8["result"]["rps"] / max(n8["result"]["rps"], 1e-9)
        f8 = ref_of(8, "info2" if role.endswith("2") else "info")
        floor = (f"; Pingora with no logic: {f8['result']['rps'] / max(n8['result']['rps'], 1e-9):.2f}×"
                 if f8 else "")
        target(f"scenario 8, intercepted {proto} ≥ {goal}× nginx terminating TLS", x >= goal,
               f"{x:.2f}× ({num(c8['result']['rps'])} vs {num(n8['result']['rps'])} req/s; "
               f"p99 {ms(c8['result']['p99_ms'])} ms vs {ms(n8['result']['p99_ms'])} ms{floor})")

# Issue 8: memory and latency stay bounded with many idle connections (no target ratio).
alone, crowded = ref_of(7), find(7, "permeable, " + idle)
if alone and crowded:
    a, c = alone["result"], crowded["result"]
    grew = (crowded["mem_kib"] - alone["mem_kib"]) / 1024
    targets.append(
        f"- scenario 7 (issue 8, no ratio target): with {idle} idle connections p50 "
        f"{ms(c['p50_ms'])} ms / p99 {ms(c['p99_ms'])} ms vs {ms(a['p50_ms'])} / "
        f"{ms(a['p99_ms'])} ms without; peak RSS +{grew:.0f} MiB "
        f"({grew * 1024 / max(int(idle), 1):.0f} KiB per idle connection); "
        f"{c.get('idle_alive', 0):,} of {c.get('idle', 0):,} still open at the end, "
        f"{c.get('errors', 0) + c.get('non2xx', 0)} failed requests")

machine = (f"{os.cpu_count()} CPUs (`nproc` {sh('nproc')}), {cpu_model()}, "
           f"Linux {platform.release()}")
versions = ", ".join(v for v in [
    sh("nginx -v 2>&1 | sed 's/.*version: //'"),
    sh("wrk -v 2>&1 | head -1 | awk '{print \"wrk \" $2}'"),
    sh("h2load --version 2>/dev/null | head -1 | awk '{print \"h2load \" $2}'"),
    sh(f"{os.environ.get('PERMEABLE_BENCH_CACHE', os.path.expanduser('~/.cache/permeable-bench'))}"
       "/venv/bin/mitmdump --version 2>/dev/null | head -1"),
] if v)
rev = sh("git -C " + os.path.dirname(os.path.abspath(__file__)) + " rev-parse --short HEAD")

doc = [
    "# permeable benchmark suite: results",
    "",
    f"- machine: {machine}",
    f"- placement: {placement}",
    f"- each candidate alone, in turn: {warm} s warm-up, {dur} s measured; {conns} keep-alive "
    f"connections (scenarios 3 latency and 7: 8 connections paced to {rate} req/s in total)",
    f"- permeable {rev}, {versions}",
    "- command: `bash benches/suite/run.sh`",
    "",
    *lines,
    "",
    "Targets (issue 9):",
    "",
    *targets,
    "",
]
text = "\n".join(doc)
print(text)
with open(out_path, "w") as f:
    f.write(text)
