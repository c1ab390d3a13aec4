#!/usr/bin/env bash
# redis-benchmark's default run (every test it has, no -t) against one autocache-shard, the
# proxy over three shards, and redis-server, one after the other; fails if any test reports an
# error. Loopback only; each run is bounded by -n.
#
#   docs/bench/default-run.sh              # -n 100000
#   N=20000 docs/bench/default-run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-100000}
BASE=${BASE:-7320}
OUT=$(mktemp -d /tmp/default-run.XXXXXX)

for bin in redis-server redis-benchmark redis-cli; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-proxy

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
wait_port() {
  for _ in $(seq 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return; sleep 0.05; done
  echo "nothing answers on $1" >&2; exit 1
}
for i in 1 2 3 4; do
  ./target/release/autocache-shard --port $((BASE + i)) --admin-port 0 --loglevel warning >"$OUT/shard$i.log" 2>&1 &
  PIDS+=($!)
  wait_port $((BASE + i))
done
./target/release/autocache-proxy --port "$BASE" --admin-port 0 --loglevel warning \
  --seeds "127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3)),127.0.0.1:$((BASE + 4))" >"$OUT/proxy.log" 2>&1 &
PIDS+=($!)
wait_port "$BASE"
redis-server --port $((BASE + 9)) --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
wait_port $((BASE + 9))

status=0
for target in "autocache-shard:$((BASE + 1))" "autocache-proxy (3 shards):$BASE" "redis-server:$((BASE + 9))"; do
  name=${target%:*}
  port=${target##*:}
  echo "## $name"
  timeout 600 redis-benchmark -p "$port" -n "$N" -q 2>&1 | tr '\r' '\n' | grep -E 'requests per second|rror' \
    | tee "$OUT/$port.txt"
  if grep -qi error "$OUT/$port.txt"; then status=1; fi
  echo
done
echo "raw output in $OUT"
exit $status
