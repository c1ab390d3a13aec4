#!/usr/bin/env bash
# instructions.sh — CPU instructions per request of the proxy (or, with KIND=shard, of a shard),
# counted by callgrind, for one or more builds: a measure that a noisy machine does not move, for comparing two builds where
# throughput differences are within the noise. Each build runs under callgrind in front of the
# same three redis-servers (static split); redis-benchmark -c 10 -r 100000 -d 64 sends N and
# then 2N requests of each test; the difference of the two totals divided by N is the cost of
# one request without start-up and shutdown.
#
#   BINS="before=/tmp/old/autocache-proxy after=target/release/autocache-proxy" proxy/bench/instructions.sh
#   BINS="before=/tmp/old/autocache-shard after=target/release/autocache-shard" KIND=shard proxy/bench/instructions.sh
#   env: TESTS="get:1 set:1 get:16 mget:16" (test:pipeline; mget = 10 keys) N=20000 OUT=<dir>
#        KIND=proxy (in front of three redis-servers) or shard (alone)
# Needs valgrind, redis-server and redis-tools (apt-get install valgrind redis-server redis-tools).
# Loopback only; every load is bounded by -n and a timeout; every process is stopped by PID.
set -euo pipefail
BINS=${BINS:?BINS="name=path ..."}
TESTS=${TESTS:-"get:1 set:1 get:16 mget:16"}
N=${N:-20000}
KIND=${KIND:-proxy}
OUT=${OUT:-$(mktemp -d /tmp/instructions.XXXXXX)}
mkdir -p "$OUT"
for bin in valgrind callgrind_annotate redis-server redis-benchmark redis-cli; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install valgrind redis-server redis-tools)" >&2; exit 1; }
done
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
wait_pong() { for _ in $(seq 600); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done; echo "no PONG on $1" >&2; exit 1; }
for p in 7451 7452 7453; do
  redis-server --port $p --save '' --appendonly no --loglevel warning >"$OUT/redis-$p.log" 2>&1 & PIDS+=($!)
done
for p in 7451 7452 7453; do wait_pong $p; done
MGET10=(mget); for _ in $(seq 10); do MGET10+=("key:__rand_int__"); done

# Instructions of one run that serves `n` requests of a test (callgrind's total).
count() { # bin test pipeline n
  local bin=$1 test=$2 P=$3 n=$4 out="$OUT/cg.$RANDOM"
  local role=(--seeds "127.0.0.1:7451,127.0.0.1:7452,127.0.0.1:7453" --threads 1)
  [ "$KIND" = shard ] && role=()
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --port 7460 --admin-port 0 \
    "${role[@]}" --loglevel warning >>"$OUT/$KIND.log" 2>&1 &
  local pid=$!
  wait_pong 7460
  # A shard starts empty: fill it (the same in both runs, so the difference drops it).
  [ "$KIND" = shard ] && redis-benchmark -p 7460 -c 10 -r 100000 -d 64 -n 200000 -P 16 -t set -q >/dev/null 2>&1
  local args=(-t "$test"); [ "$test" = mget ] && args=("${MGET10[@]}")
  timeout 600 redis-benchmark -p 7460 -c 10 -r 100000 -d 64 -n "$n" -P "$P" -q "${args[@]}" >/dev/null 2>&1
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}

# Prefill so GETs hit.
for p in 7451 7452 7453; do
  redis-benchmark -p $p -c 10 -r 100000 -d 64 -n 200000 -P 16 -t set -q >/dev/null 2>&1
done
echo "| build | test | -P | instructions per request |"
echo "|---|---|---|---|"
for spec in $TESTS; do
  test=${spec%%:*}; P=${spec##*:}
  for b in $BINS; do
    name=${b%%=*}; bin=${b#*=}
    one=$(count "$bin" "$test" "$P" "$N"); two=$(count "$bin" "$test" "$P" $((2 * N)))
    echo "| $name | ${test^^} | $P | $(( (two - one) / N )) |"
  done
done
