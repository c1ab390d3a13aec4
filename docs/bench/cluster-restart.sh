#!/usr/bin/env bash
# Rolling restart with real processes: three release-build shards in cluster mode with warm
# tiers on loopback, KEYS keys written through redis-cli -c, then each shard in turn gets
# SIGTERM and is started again with the same flags and directory. Prints, per node, the time
# from SIGTERM until it serves its slots again, and at the end how many keys read back.
# MODE=leave runs the same with `--cluster-shutdown leave` for comparison. Loopback only;
# kills what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-3000}
MODE=${MODE:-restart}
S=restart-bench-secret
cargo build --release -q -p autocache-shard
B=./target/release/autocache-shard
D=$(mktemp -d /tmp/cluster-restart.XXXXXX)
declare -A PID
stop_all() { for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_all; rm -rf "$D"' EXIT
args() { # port -> flags
  local seeds=""
  [ "$1" != 7701 ] && seeds="--cluster-seeds 127.0.0.1:17701"
  echo "--port $1 --dir $D/$1 --warm-tier yes --cluster-enabled yes --cluster-secret $S --cluster-shutdown $MODE --admin-port 0 --loglevel warning $seeds"
}
start() { mkdir -p "$D/$1"; $B $(args "$1") >>"$D/$1.log" 2>&1 & PID[$1]=$!; }
info() { redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r'; }
start 7701; sleep 0.5; start 7702; start 7703
for _ in $(seq 300); do info 7701 | grep -q "cluster_size:3" && break; sleep 0.1; done
# Let the join rebalance (online migration) finish: writes to a slot in transfer may get
# TRYAGAIN, which redis-cli does not retry.
for _ in $(seq 300); do info 7701 | grep -q "cluster_slots_migrating:0" && info 7702 | grep -q "cluster_slots_importing:0" && info 7703 | grep -q "cluster_slots_importing:0" && break; sleep 0.1; done
sleep 2
ok=$(seq "$KEYS" | awk '{ print "SET key:" $1 " " $1 }' | redis-cli -c -p 7701 | grep -c '^OK' || true)
count() { seq "$KEYS" | awk '{ print "GET key:" $1 }' | redis-cli -c -p 7701 | grep -c '^[0-9]' || true; }
echo "written: $ok of $KEYS acknowledged, readable: $(count)"
for port in 7701 7702 7703; do
  t0=$(date +%s.%N)
  kill -TERM "${PID[$port]}"; wait "${PID[$port]}" 2>/dev/null || true
  start "$port"
  for _ in $(seq 600); do
    i=$(info "$port")
    if grep -q "cluster_state:ok" <<<"$i" && grep -q "cluster_known_nodes:3" <<<"$i"; then break; fi
    sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "node $port: SIGTERM -> serving again after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
  sleep 2
done
echo "after the rolling restart ($MODE): $(count) of $KEYS keys read back"
