#!/usr/bin/env bash
# MULTI + 3 x INCR + EXEC, measured with autocache-loadtest (--tx-commands 3; every request one
# transaction, its 3 keys distinct and in one hash-tag group, so one slot), unpipelined and
# pipelined, against:
#   redis-server                       the reference
#   autocache-shard (direct)           ratio shard / redis-server
#   autocache-proxy -> that one shard  ratio proxy / direct: what the hop costs a transaction
#   autocache-proxy -> 3 other shards  a static split, for information
# plus, with WORKLOADS="tx setget", the plain SET:GET 1:1 baseline in the same run. REPS rounds,
# the systems alternating within each round; medians and ratios printed as a markdown table,
# with the CPU time per request of the process measured and, behind proxy1, of its shard
# (from /proc/PID/stat).
# Loopback only; every run is bounded by -n, --hard-timeout and timeout(1).
#
#   docs/bench/transactions.sh                     # 3 rounds, transactions only
#   REPS=5 WORKLOADS="tx setget" docs/bench/transactions.sh
#   N_P1=500 N_P16=2000 REPS=1 docs/bench/transactions.sh   # a quick check
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-tx}
PIPELINES=${PIPELINES:-"1 16"}
# Requests per connection (50 connections): -P 1 and -P 16.
N_P1=${N_P1:-4000}
N_P16=${N_P16:-20000}
CLIENTS=${CLIENTS:-50}
BASE=${BASE:-7440}
OUT=$(mktemp -d /tmp/transactions.XXXXXX)

for bin in redis-server redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-proxy -p autocache-loadtest
S=./target/release/autocache-shard
P=./target/release/autocache-proxy
L=./target/release/autocache-loadtest

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
wait_port() {
  for _ in $(seq 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return; sleep 0.05; done
  echo "nothing answers on $1" >&2; exit 1
}
# :BASE+1 the shard measured direct and behind proxy1 (:BASE); :BASE+2..4 behind proxy3
# (:BASE+5); redis-server :BASE+9.
declare -A PID
for i in 1 2 3 4; do
  $S --port $((BASE + i)) --dir "$OUT/shard$i" --admin-port 0 --loglevel warning >"$OUT/shard$i.log" 2>&1 &
  PIDS+=($!)
  PID[shard$i]=$!
  wait_port $((BASE + i))
done
$P --port "$BASE" --admin-port 0 --loglevel warning --seeds "127.0.0.1:$((BASE + 1))" \
  >"$OUT/proxy1.log" 2>&1 &
PIDS+=($!)
PID[proxy1]=$!
$P --port $((BASE + 5)) --admin-port 0 --loglevel warning \
  --seeds "127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3)),127.0.0.1:$((BASE + 4))" >"$OUT/proxy3.log" 2>&1 &
PIDS+=($!)
PID[proxy3]=$!
redis-server --port $((BASE + 9)) --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
PID[redis]=$!
PID[shard]=${PID[shard1]}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for p in "$BASE" $((BASE + 5)) $((BASE + 9)); do wait_port "$p"; done
{ redis-server --version; $S --version; $P --version; git rev-parse --short HEAD; uname -r; nproc; } >"$OUT/versions.txt"

SYSTEMS="redis:$((BASE + 9)) shard:$((BASE + 1)) proxy1:$BASE proxy3:$((BASE + 5))"
echo -e "workload\tsystem\tpipeline\trep\trps\tp50_ms\tp99_ms\terrors\tcpu_us\tbackend_cpu_us" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for w in $WORKLOADS; do
    case $w in
      tx) args=(--tx-commands 3 --key-prefix tx:) ;;
      setget) args=(--ratio 1:1 -d 64 --key-prefix sg:) ;;
      *) echo "unknown workload $w (tx, setget)" >&2; exit 1 ;;
    esac
    for P_ in $PIPELINES; do
      n=$N_P1; [ "$P_" != 1 ] && n=$N_P16
      for sys in $SYSTEMS; do
        name=${sys%:*}
        port=${sys##*:}
        json="$OUT/$w-$name-P$P_-r$rep.json"
        c0=$(cpu "${PID[$name]}")
        b0=$(cpu "${PID[shard1]}")
        timeout 300 $L -p "$port" -t 1 -c "$CLIENTS" --pipeline "$P_" -n "$n" --hard-timeout 240 \
          --key-maximum 99999 --hash-tag-group 16 --seed "$rep" --hide-progress \
          --json-out-file "$json" "${args[@]}" >"$OUT/$w-$name-P$P_-r$rep.txt"
        c1=$(cpu "${PID[$name]}")
        b1=$(cpu "${PID[shard1]}")
        python3 - "$json" "$w" "$name" "$P_" "$rep" $((c1 - c0)) $((b1 - b0)) "$HZ" >>"$OUT/runs.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ticks, backend, hz = (float(x) for x in sys.argv[6:9])
us = lambda t: f"{t * 1e6 / hz / max(r['requests'], 1):.2f}"
print("\t".join(sys.argv[2:6] + [f"{r['ops_per_sec']:.0f}", f"{r['totals']['p50_ms']:.3f}",
      f"{r['totals']['p99_ms']:.3f}", str(r["errors_total"]), us(ticks),
      us(backend) if sys.argv[3] == "proxy1" else ""]))
PY
      done
    done
  done
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["workload"], r["system"], r["pipeline"])].append(r)
med = lambda rs, k: st.median(float(r[k]) for r in rs)
names = {"tx": "MULTI + 3 INCR + EXEC", "setget": "SET:GET 1:1"}
print("| workload | -P | redis-server | autocache-shard | shard / redis | proxy → that shard | proxy / direct | proxy → 3 shards |")
print("|---|---|---|---|---|---|---|---|")
errors = 0
rounds = []
for w in dict.fromkeys(k[0] for k in g):
    for P in dict.fromkeys(k[2] for k in g if k[0] == w):
        c = {s: g.get((w, s, P), []) for s in ("redis", "shard", "proxy1", "proxy3")}
        if not all(c.values()):
            continue
        errors += sum(int(r["errors"]) for rs in c.values() for r in rs)
        m = {s: med(rs, "rps") for s, rs in c.items()}
        cell = lambda s: f"{m[s]:,.0f}/s ({med(c[s],'p50_ms'):.2f} / {med(c[s],'p99_ms'):.2f} ms)"
        print(f"| {names.get(w, w)} | {P} | {cell('redis')} | {cell('shard')} | {m['shard']/m['redis']:.2f}x "
              f"| {cell('proxy1')} | {m['proxy1']/m['shard']:.2f}x | {cell('proxy3')} |")
        by_rep = lambda s: {r["rep"]: float(r["rps"]) for r in c[s]}
        sh, re_, p1 = by_rep("shard"), by_rep("redis"), by_rep("proxy1")
        rounds.append(f"{names.get(w, w)} -P {P}: shard/redis "
                      + " ".join(f"{sh[k]/re_[k]:.2f}" for k in sh if k in re_)
                      + "; proxy/direct " + " ".join(f"{p1[k]/sh[k]:.2f}" for k in p1 if k in sh))
print("\nCPU µs per request, medians: the process measured (for proxy → that shard: proxy + its shard)\n")
print("| workload | -P | redis-server | autocache-shard | proxy → that shard | proxy → 3 shards (proxy only) |")
print("|---|---|---|---|---|---|")
for w in dict.fromkeys(k[0] for k in g):
    for P in dict.fromkeys(k[2] for k in g if k[0] == w):
        c = {s: g.get((w, s, P), []) for s in ("redis", "shard", "proxy1", "proxy3")}
        if not all(c.values()):
            continue
        print(f"| {names.get(w, w)} | {P} | {med(c['redis'], 'cpu_us'):.2f} | {med(c['shard'], 'cpu_us'):.2f} "
              f"| {med(c['proxy1'], 'cpu_us'):.2f} + {med(c['proxy1'], 'backend_cpu_us'):.2f} "
              f"| {med(c['proxy3'], 'cpu_us'):.2f} |")
n = len(next(iter(g.values())))
print(f"\nRequests (a transaction is one) per second, medians of {n} runs per cell, p50 / p99 latency"
      f" in parentheses; ratios of the medians. Round by round:")
for line in rounds:
    print(f"- {line}")
print(f"\nerrors in all runs: {errors}; raw runs in {sys.argv[1]}")
PY
cat "$OUT/versions.txt"
