#!/usr/bin/env bash
# busy-poll.sh — one autocache-shard behind two autocache-proxies, one with busy polling off and
# one with `busy-poll-us $US` (default 100); redis-benchmark GET and SET at -c 1 (the hop) and
# -c 50 (the cost under load) against the shard directly and through each proxy, 3 alternated
# reps. Prints rps and the CPU per request of the process behind each port.
# Usage: cargo build --release -p autocache-shard -p autocache-proxy; US=100 bash proxy/bench/busy-poll.sh
# Ports 7801-7803 on 127.0.0.1; every load is bounded (request counts + timeouts).
set -u
cd "$(dirname "$0")/../.." || exit 1
B=./target/release
D=$(mktemp -d /tmp/busy-poll.XXXXXX)
$B/autocache-shard --port 7801 --dir "$D" --admin-port 0 --loglevel warning >"$D/shard.log" 2>&1 &
S=$!
$B/autocache-proxy --port 7802 --seeds 127.0.0.1:7801 --threads 1 --loglevel warning --admin-port 0 >"$D/off.log" 2>&1 &
P0=$!
AUTOCACHE_BUSY_POLL_US=${US:-100} $B/autocache-proxy --port 7803 --seeds 127.0.0.1:7801 --threads 1 \
  --loglevel warning --admin-port 0 >"$D/on.log" 2>&1 &
P1=$!
trap 'kill $S $P0 $P1 2>/dev/null; rm -rf "$D"' EXIT
for port in 7801 7802 7803; do
  for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
done
cpu() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
for rep in 1 2 3; do
  for t in get set; do
    for c in 1 50; do
      n=$([ "$c" = 1 ] && echo 20000 || echo 200000)
      for target in direct:7801:$S off:7802:$P0 on:7803:$P1; do
        IFS=: read -r name port pid <<<"$target"
        c0=$(cpu "$pid")
        rps=$(timeout 120 redis-benchmark -p "$port" -c "$c" -n "$n" -r 100000 -d 64 -t "$t" --threads 1 -q 2>/dev/null |
          grep -oE "[0-9.]+ requests per second" | awk '{print $1}')
        c1=$(cpu "$pid")
        echo "rep$rep $t -c $c $name rps=$rps cpu_us_per_req=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}')"
      done
    done
  done
done
