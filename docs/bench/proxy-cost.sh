#!/usr/bin/env bash
# proxy-cost.sh — what one request costs the proxy, isolated from cluster effects: one
# autocache-shard (:18801) behind one autocache-proxy (:18800, --threads 1), redis-benchmark
# -c 50 -P 1 -r 100000 -d 64. Per configuration and rep: rps and the proxy's CPU µs per request
# (from /proc/<pid>/stat). With STRACE=1, also the proxy's syscalls over N requests
# (strace -c -f): one client read and write per request, plus the backend writes and reads.
#
#   docs/bench/proxy-cost.sh                                  # SET, near cache default/always/off
#   T=get REPS=5 docs/bench/proxy-cost.sh
#   CONFIGS="default" STRACE=1 N=20000 docs/bench/proxy-cost.sh
#   CONFIGS="default sample8 nodetect" T=get ...   # what hot-key detection costs a request
# Loopback only; every run is bounded by -n.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${T:-set}
N=${N:-300000}
REPS=${REPS:-3}
STRACE=${STRACE:-0}
CONFIGS=${CONFIGS:-"default always off"}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p autocache-shard -p autocache-proxy
S=./target/release/autocache-shard
P=./target/release/autocache-proxy
D=$(mktemp -d /tmp/proxy-cost.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done; return 1; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

$S --port 18801 --dir "$D/shard" --admin-port 0 --loglevel warning >"$D/shard.log" 2>&1 &
PIDS+=($!)
wait_port 18801
redis-benchmark -p 18801 -c 50 -n 200000 -r 100000 -d 64 -t set -P 16 -q >/dev/null 2>&1
hz=$(getconf CLK_TCK)
for conf in $CONFIGS; do
  case $conf in
    default) env=() ;;
    always) env=(AUTOCACHE_NEAR_CACHE_LINK_IDLE_MS=0) ;;
    off) env=(AUTOCACHE_NEAR_CACHE=false) ;;
    sample8) env=(AUTOCACHE_HOTKEY_SAMPLE=8) ;;
    nodetect) env=(AUTOCACHE_HOTKEY_ENABLED=false) ;;
    *) echo "unknown config $conf" >&2; exit 1 ;;
  esac
  env "${env[@]}" $P --port 18800 --seeds 127.0.0.1:18801 --admin-port 0 --threads 1 --loglevel warning \
    >"$D/proxy-$conf.log" 2>&1 &
  pp=$!
  wait_port 18800
  for rep in $(seq "$REPS"); do
    c0=$(cpu "$pp")
    rps=$(timeout 120 redis-benchmark -p 18800 -c 50 -n "$N" -r 100000 -d 64 -t "$T" -P 1 --csv 2>/dev/null |
      tail -1 | tr -d '"' | cut -d, -f2)
    c1=$(cpu "$pp")
    awk -v c="$conf" -v t="$T" -v r="$rep" -v rps="$rps" -v d=$((c1 - c0)) -v hz="$hz" -v n="$N" \
      'BEGIN { printf "%s\t%s\trep %s\trps %s\tproxy cpu %.1f us/req\n", c, t, r, rps, d * 1e6 / hz / n }'
  done
  if [ "$STRACE" = 1 ]; then
    strace -c -f -p "$pp" -o "$D/strace-$conf.txt" & st=$!
    sleep 1
    timeout 120 redis-benchmark -p 18800 -c 50 -n "$N" -r 100000 -d 64 -t "$T" -P 1 -q >/dev/null 2>&1
    kill -INT "$st"; wait "$st" || true
    echo "$conf: syscalls for $N requests"; grep -E "sendto|recvfrom|epoll_wait|total" "$D/strace-$conf.txt"
  fi
  kill "$pp"; wait "$pp" 2>/dev/null || true
done
