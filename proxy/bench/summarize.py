#!/usr/bin/env python3
"""Summarize the runs.tsv of proxy/bench/peers.sh into markdown tables (medians, min-max, ratios).

Usage: summarize.py RUNS_TSV  (env CLEAN_EXT: a run is "clean" if other jobs used fewer cores)."""
import csv, os, sys, statistics as st
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
g = defaultdict(list)
for r in rows:
    if r["rps"] in ("NA", "") or r["rc"] != "0":
        continue
    g[(r["system"], r["test"])].append(r)

CLEAN = float(os.environ.get("CLEAN_EXT", "0.25"))
SYS = ["direct", "haproxy", "twemproxy", "cluster", "custom"]
TESTS = ["set_p1", "get_p1", "set_p16", "get_p16", "mset_p1", "mget_p1", "mset_p16", "mget_p16"]
med = lambda k, rs: st.median(float(r[k]) for r in rs)

print(f"## Per system x test\n\nStats use the 'clean' runs (other jobs used < {CLEAN} cores during the run) when there are >= 2 of them, "
      "else all runs (marked *). spread = (max-min)/median over the runs used. 'all-runs med' = median rps over every run.\n")
print("| system | test | runs clean/total | rps median | rps min-max | spread | all-runs med | p50 ms | p99 ms | bench CPU | proxy CPU | servers CPU | ext CPU | proxy us/req | servers us/req |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
M = {}
for s in SYS:
    for t in TESTS:
        allrs = g.get((s, t))
        if not allrs:
            continue
        clean = [r for r in allrs if float(r["ext_cpu"]) < CLEAN]
        rs = clean if len(clean) >= 2 else allrs
        mark = "" if len(clean) >= 2 else "*"
        allmed = st.median(float(r["rps"]) for r in allrs)
        rps = [float(r["rps"]) for r in rs]
        m = st.median(rps)
        d = dict(rps=m, p50=med("p50_ms", rs), p99=med("p99_ms", rs))
        M[(s, t)] = d
        pc, sc = med("proxy_cpu", rs), med("servers_cpu", rs)
        pus = f"{pc / m * 1e6:.1f}" if s in ("haproxy", "twemproxy") else "-"
        sus = f"{sc / m * 1e6:.1f}"
        print(f"| {s} | {t} | {len(clean)}/{len(allrs)}{mark} | {m:,.0f} | {min(rps):,.0f}-{max(rps):,.0f} | {(max(rps)-min(rps))/m*100:.0f}% | {allmed:,.0f} "
              f"| {d['p50']:.3f} | {d['p99']:.3f} | {med('bench_cpu', rs):.2f} | {pc:.2f} | {sc:.2f} | {med('ext_cpu', rs):.2f} | {pus} | {sus} |")

print("\nCPU columns are cores (1.00 = one core busy for the whole run); 'ext' = machine CPU not used by the benchmark, proxy or servers (other jobs).")
print("us/req = CPU microseconds per request (per redis-benchmark request; an mset/mget request carries 10 keys).\n")

print("## Ratios vs direct (rps ratio; p50 ratio; p99 ratio)\n")
others = [s for s in ("haproxy", "twemproxy", "cluster", "custom") if any(k[0] == s for k in M)]
print("| test | " + " | ".join(f"{s}/direct" for s in others) + " |")
print("|---|" + "---|" * len(others))
for t in TESTS:
    if (("direct", t)) not in M:
        continue
    d = M[("direct", t)]
    cells = []
    for s in others:
        x = M.get((s, t))
        cells.append("-" if not x else f"{x['rps']/d['rps']:.2f}x rps; p50 {x['p50']/d['p50']:.2f}x; p99 {x['p99']/d['p99']:.2f}x")
    print(f"| {t} | " + " | ".join(cells) + " |")
