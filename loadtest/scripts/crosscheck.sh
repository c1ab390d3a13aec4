#!/usr/bin/env bash
# Cross-checks autocache-loadtest against redis-benchmark on a local redis-server: unpipelined
# and pipelined (16) SET and GET, 50 connections, 64-byte values, 100000 keys. Each case runs
# ROUNDS times, the tools alternating (loadtest, redis-benchmark, redis-benchmark --threads 2,
# loadtest, ...); the medians and their ratios are printed as a markdown table.
#
# Bounded: every run has a fixed request count and a `timeout`; traffic goes to 127.0.0.1 only.
# The script starts its own redis-server on $PORT and stops it on exit.
#
#   loadtest/scripts/crosscheck.sh            # release build, port 7400, 3 rounds
#   PORT=7410 ROUNDS=5 loadtest/scripts/crosscheck.sh
set -euo pipefail

PORT=${PORT:-7400}
ROUNDS=${ROUNDS:-3}
CONNS=50
SIZE=64
KEYS=100000
# Requests per case, sized for roughly 5 s each on a 2-core machine.
N_P1=${N_P1:-500000}
N_P16=${N_P16:-3200000}
HOST=127.0.0.1

cd "$(dirname "$0")/../.."
cargo build --release -q -p autocache-loadtest
LT=target/release/autocache-loadtest
OUT=$(mktemp -d)

redis-server --port "$PORT" --bind "$HOST" --save '' --appendonly no \
  --daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
cleanup() {
  if [[ -f "$OUT/redis.pid" ]]; then kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$OUT"
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -h "$HOST" -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Both tools' GETs must find their keys: autocache-loadtest names them key:N, redis-benchmark
# key:000000NNNNNN. Fill both keyspaces once.
timeout 120 "$LT" -s "$HOST" -p "$PORT" -c "$CONNS" -t 1 --key-prefix key: --key-maximum $((KEYS - 1)) \
  -d "$SIZE" --prefill --ratio 0:1 -n 1 --hide-progress >/dev/null
timeout 120 redis-benchmark -h "$HOST" -p "$PORT" -c "$CONNS" -P 16 -t set -d "$SIZE" -r "$KEYS" \
  -n $((KEYS * 12)) -q >/dev/null

lt_run() { # op pipeline n -> ops/s
  local op=$1 p=$2 n=$3 ratio
  if [[ $op == set ]]; then ratio=1:0; else ratio=0:1; fi
  timeout 300 "$LT" -s "$HOST" -p "$PORT" -c "$CONNS" -t 1 --pipeline "$p" --ratio "$ratio" \
    -d "$SIZE" --key-prefix key: --key-maximum $((KEYS - 1)) -n $((n / CONNS)) \
    --hide-progress --json-out-file "$OUT/lt.json" >/dev/null
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["ops_per_sec"]))' "$OUT/lt.json"
}

rb_run() { # op pipeline n threads -> ops/s
  local op=$1 p=$2 n=$3 th=$4
  timeout 300 redis-benchmark -h "$HOST" -p "$PORT" -c "$CONNS" -P "$p" -t "$op" -d "$SIZE" \
    -r "$KEYS" -n "$n" --threads "$th" --csv | awk -F'"' 'NR==2 {printf "%d\n", $4}'
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

# LT = autocache-loadtest (-t 1: one worker thread), RB1 = redis-benchmark (its default, one
# thread), RB2 = redis-benchmark --threads 2. Order within a round: LT, RB1, RB2.
echo "| case | LT runs | RB1 runs | RB2 runs | median LT | median RB1 | median RB2 | LT/RB1 | LT/RB2 |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in 1 16; do
  if [[ $p == 1 ]]; then n=$N_P1; else n=$N_P16; fi
  for op in set get; do
    lt=() rb1=() rb2=()
    for _ in $(seq "$ROUNDS"); do
      lt+=("$(lt_run "$op" "$p" "$n")")
      rb1+=("$(rb_run "$op" "$p" "$n" 1)")
      rb2+=("$(rb_run "$op" "$p" "$n" 2)")
    done
    mlt=$(printf '%s\n' "${lt[@]}" | median)
    mrb1=$(printf '%s\n' "${rb1[@]}" | median)
    mrb2=$(printf '%s\n' "${rb2[@]}" | median)
    echo "| ${op^^} -P $p | ${lt[*]} | ${rb1[*]} | ${rb2[*]} | $mlt | $mrb1 | $mrb2 | $(ratio "$mlt" "$mrb1") | $(ratio "$mlt" "$mrb2") |"
  done
done

# Little's law check (P=1 GET): requests in flight = throughput x mean latency. A client that
# always has its 50 requests out shows ~50; fewer means the client itself was the bottleneck
# (time between a reply and the next send is in neither tool's latency).
echo
echo "| P=1 GET, one run each | ops/s | mean latency ms | in flight (ops/s x mean) |"
echo "|---|---|---|---|"
timeout 300 "$LT" -s "$HOST" -p "$PORT" -c "$CONNS" -t 1 --ratio 0:1 -d "$SIZE" --key-prefix key: \
  --key-maximum $((KEYS - 1)) -n $((N_P1 / CONNS)) --hide-progress --json-out-file "$OUT/lt.json" >/dev/null
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); t=r["ops_per_sec"]; m=r["totals"]["mean_ms"]; print("| autocache-loadtest | %.0f | %.3f | %.1f |" % (t, m, t*m/1000))' "$OUT/lt.json"
for th in 1 2; do
  timeout 300 redis-benchmark -h "$HOST" -p "$PORT" -c "$CONNS" -P 1 -t get -d "$SIZE" -r "$KEYS" \
    -n "$N_P1" --threads "$th" --csv | awk -F'"' -v th="$th" 'NR==2 {printf "| redis-benchmark --threads %s | %.0f | %.3f | %.1f |\n", th, $4, $6, $4*$6/1000}'
done
