#!/usr/bin/env bash
# Measures failure detection + slot takeover with real processes: three release-build shards
# in cluster mode on loopback, kill -9 one, time until both survivors report every slot served
# by the two of them. ROUNDS rounds (default 3). Loopback only; kills what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
S=takeover-bench-secret
cargo build --release -q -p autocache-shard
B=./target/release/autocache-shard
D=$(mktemp -d /tmp/cluster-takeover.XXXXXX)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop_all; rm -rf "$D"' EXIT
start() { # port seeds...
  local port=$1; shift
  mkdir -p "$D/$port"
  $B --port "$port" --dir "$D/$port" --cluster-enabled yes --cluster-secret $S --admin-port 0 --loglevel warning "$@" >/dev/null 2>&1 &
  PIDS+=($!)
}
info() { redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r'; }
for r in $(seq "$ROUNDS"); do
  stop_all; rm -rf "${D:?}"/*
  start 7601; sleep 0.5
  start 7602 --cluster-seeds 127.0.0.1:17601
  start 7603 --cluster-seeds 127.0.0.1:17601
  for _ in $(seq 200); do info 7601 | grep -q "cluster_size:3" && break; sleep 0.1; done
  sleep 1
  t0=$(date +%s.%N)
  kill -9 "${PIDS[2]}"
  for _ in $(seq 400); do
    if info 7601 | grep -q "cluster_size:2" && info 7601 | grep -q "cluster_state:ok" && info 7602 | grep -q "cluster_size:2"; then break; fi
    sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "round $r: kill -9 -> every slot served by the survivors after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
done
