#!/usr/bin/env bash
# EVALSHA of a 2-command script (INCR then GET of its one key) measured with redis-benchmark
# (`EVALSHA <sha> 1 ev:__rand_int__`, -r 100000, 50 connections), unpipelined and pipelined,
# against:
#   redis-server                       the reference
#   autocache-shard (direct)           ratio shard / redis-server
#   autocache-proxy -> that one shard  ratio proxy / direct: what the hop costs a script
# plus, with WORKLOADS="evalsha incr noop", a plain INCR in the same run as a baseline and the
# EVALSHA of `return 1` with one key (what running any script costs, without its commands). REPS rounds,
# the systems alternating within each round; medians and ratios printed as a markdown table,
# with the CPU time per request of the process measured and, behind the proxy, of its shard
# (from /proc/PID/stat).
# Loopback only; every run is bounded by -n and timeout(1).
#
#   docs/bench/scripts.sh                            # 3 rounds, EVALSHA only
#   REPS=5 WORKLOADS="evalsha incr noop" docs/bench/scripts.sh
#   N_P1=20000 N_P16=100000 REPS=1 docs/bench/scripts.sh   # a quick check
#   PERF=1 docs/bench/scripts.sh     # also perf record the shard during one -P 16 EVALSHA run
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-evalsha}
PIPELINES=${PIPELINES:-"1 16"}
# Requests per run, all connections together: -P 1 and -P 16.
N_P1=${N_P1:-200000}
N_P16=${N_P16:-1000000}
CLIENTS=${CLIENTS:-50}
BASE=${BASE:-7460}
PERF=${PERF:-0}
OUT=$(mktemp -d /tmp/scripts.XXXXXX)
SCRIPT="redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])"
NOOP="return 1"

for bin in redis-server redis-cli redis-benchmark python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-proxy
S=./target/release/autocache-shard
P=./target/release/autocache-proxy

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
# :BASE+1 the shard measured direct and behind the proxy (:BASE); redis-server :BASE+9.
declare -A PID
$S --port $((BASE + 1)) --dir "$OUT/shard" --admin-port 0 --loglevel warning >"$OUT/shard.log" 2>&1 &
PIDS+=($!)
PID[shard]=$!
wait_port $((BASE + 1))
$P --port "$BASE" --admin-port 0 --loglevel warning --seeds "127.0.0.1:$((BASE + 1))" \
  >"$OUT/proxy.log" 2>&1 &
PIDS+=($!)
PID[proxy]=$!
redis-server --port $((BASE + 9)) --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
PID[redis]=$!
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for p in "$BASE" $((BASE + 9)); do wait_port "$p"; done
{ redis-server --version; $S --version; $P --version; git rev-parse --short HEAD; uname -r; nproc; } >"$OUT/versions.txt"

# The script is loaded once per system (through the proxy: on its shard); every run's EVALSHA
# must find it (a NOSCRIPT would show as errors in redis-benchmark's output).
SHA=""
NOOP_SHA=""
for port in $((BASE + 9)) $((BASE + 1)) "$BASE"; do
  sha=$(redis-cli -p "$port" SCRIPT LOAD "$SCRIPT")
  [ -z "$SHA" ] || [ "$sha" = "$SHA" ] || { echo "SHA mismatch on $port: $sha" >&2; exit 1; }
  SHA=$sha
  NOOP_SHA=$(redis-cli -p "$port" SCRIPT LOAD "$NOOP")
done
[ "$(redis-cli -p "$BASE" EVALSHA "$SHA" 1 ev:check)" = 1 ] || { echo "EVALSHA check failed" >&2; exit 1; }

SYSTEMS="redis:$((BASE + 9)) shard:$((BASE + 1)) proxy:$BASE"
echo -e "workload\tsystem\tpipeline\trep\trps\tp50_ms\tp99_ms\tcpu_us\tbackend_cpu_us" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for w in $WORKLOADS; do
    case $w in
      evalsha) cmd=(EVALSHA "$SHA" 1 ev:__rand_int__) ;;
      incr) cmd=(INCR in:__rand_int__) ;;
      noop) cmd=(EVALSHA "$NOOP_SHA" 1 no:__rand_int__) ;;
      *) echo "unknown workload $w (evalsha, incr, noop)" >&2; exit 1 ;;
    esac
    for P_ in $PIPELINES; do
      n=$N_P1; [ "$P_" != 1 ] && n=$N_P16
      for sys in $SYSTEMS; do
        name=${sys%:*}
        port=${sys##*:}
        csv="$OUT/$w-$name-P$P_-r$rep.csv"
        perf_pid=""
        if [ "$PERF" = 1 ] && [ "$rep" = 1 ] && [ "$P_" = 16 ] && [ "$w" = evalsha ] &&
          [ "$name" != proxy ]; then
          perf record -F 999 -p "${PID[$name]}" -o "$OUT/perf-$name.data" >/dev/null 2>&1 &
          perf_pid=$!
          sleep 0.5
        fi
        c0=$(cpu "${PID[$name]}")
        b0=$(cpu "${PID[shard]}")
        timeout 300 redis-benchmark -p "$port" -c "$CLIENTS" -n "$n" -P "$P_" -r 100000 --csv \
          "${cmd[@]}" >"$csv" 2>"$OUT/$w-$name-P$P_-r$rep.err"
        c1=$(cpu "${PID[$name]}")
        b1=$(cpu "${PID[shard]}")
        if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
        python3 - "$csv" "$w" "$name" "$P_" "$rep" $((c1 - c0)) $((b1 - b0)) "$HZ" "$n" >>"$OUT/runs.tsv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 1, f"{sys.argv[1]}: {rows}"
r = rows[0]
ticks, backend, hz, n = (float(x) for x in sys.argv[6:10])
us = lambda t: f"{t * 1e6 / hz / n:.2f}"
print("\t".join(sys.argv[2:6] + [r["rps"], r["p50_latency_ms"], r["p99_latency_ms"], us(ticks),
      us(backend) if sys.argv[3] == "proxy" else ""]))
PY
      done
    done
  done
done
# A reply error (NOSCRIPT, anything) is printed by redis-benchmark to stderr.
if grep -l "Error" "$OUT"/*.err >/dev/null 2>&1; then
  echo "errors from the servers:" >&2; grep -h "Error" "$OUT"/*.err | sort | uniq -c >&2; exit 1
fi
# The servers' own counts (every EVALSHA ran the script: INCR and GET calls match it).
for sys in $SYSTEMS; do
  name=${sys%:*}
  port=${sys##*:}
  [ "$name" = proxy ] && continue
  redis-cli -p "$port" INFO commandstats | grep -E '^cmdstat_(evalsha|incr|get):' |
    sed "s/^/$name /" >>"$OUT/commandstats.txt" || true
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["workload"], r["system"], r["pipeline"])].append(r)
med = lambda rs, k: st.median(float(r[k]) for r in rs)
names = {"evalsha": "EVALSHA (INCR + GET)", "incr": "INCR", "noop": "EVALSHA (return 1)"}
print("| workload | -P | redis-server | autocache-shard | shard / redis | proxy → that shard | proxy / direct |")
print("|---|---|---|---|---|---|---|")
rounds = []
for w in dict.fromkeys(k[0] for k in g):
    for P in dict.fromkeys(k[2] for k in g if k[0] == w):
        c = {s: g.get((w, s, P), []) for s in ("redis", "shard", "proxy")}
        if not all(c.values()):
            continue
        m = {s: med(rs, "rps") for s, rs in c.items()}
        cell = lambda s: f"{m[s]:,.0f}/s ({med(c[s],'p50_ms'):.2f} / {med(c[s],'p99_ms'):.2f} ms)"
        print(f"| {names.get(w, w)} | {P} | {cell('redis')} | {cell('shard')} | {m['shard']/m['redis']:.2f}x "
              f"| {cell('proxy')} | {m['proxy']/m['shard']:.2f}x |")
        by_rep = lambda s: {r["rep"]: float(r["rps"]) for r in c[s]}
        sh, re_, px = by_rep("shard"), by_rep("redis"), by_rep("proxy")
        rounds.append(f"{names.get(w, w)} -P {P}: shard/redis "
                      + " ".join(f"{sh[k]/re_[k]:.2f}" for k in sh if k in re_)
                      + "; proxy/direct " + " ".join(f"{px[k]/sh[k]:.2f}" for k in px if k in sh))
print("\nCPU µs per request, medians: the process measured (for the proxy: proxy + its shard)\n")
print("| workload | -P | redis-server | autocache-shard | proxy → that shard |")
print("|---|---|---|---|---|")
for w in dict.fromkeys(k[0] for k in g):
    for P in dict.fromkeys(k[2] for k in g if k[0] == w):
        c = {s: g.get((w, s, P), []) for s in ("redis", "shard", "proxy")}
        if not all(c.values()):
            continue
        print(f"| {names.get(w, w)} | {P} | {med(c['redis'], 'cpu_us'):.2f} | {med(c['shard'], 'cpu_us'):.2f} "
              f"| {med(c['proxy'], 'cpu_us'):.2f} + {med(c['proxy'], 'backend_cpu_us'):.2f} |")
n = len(next(iter(g.values())))
print(f"\nRequests per second, medians of {n} runs per cell, p50 / p99 latency in parentheses;"
      f" ratios of the medians. Round by round:")
for line in rounds:
    print(f"- {line}")
print(f"\nraw runs in {sys.argv[1]}")
PY
cat "$OUT/commandstats.txt" "$OUT/versions.txt"
if [ "$PERF" = 1 ]; then
  for name in shard redis; do
    [ -f "$OUT/perf-$name.data" ] || continue
    perf report -i "$OUT/perf-$name.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null |
      grep -E '^ +[0-9]' >"$OUT/perf-$name.txt" || true
    echo "perf ($name, -P 16 EVALSHA, self time >= 1.5%): $OUT/perf-$name.txt"
  done
fi
