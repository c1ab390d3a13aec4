#!/usr/bin/env bash
# PUBLISH fan-out throughput (messages delivered per second) with 1 and with 100 subscribers
# of one channel, measured with autocache-pubsub-bench (one publisher connection, PUBLISH
# pipelined 32 deep, 64-byte payloads; the figure counts every subscriber's messages over the
# time from the first PUBLISH to the last message read), against:
#   redis-server                    the reference
#   autocache-shard (direct)        ratio shard / redis-server
#   autocache-proxy -> that shard   ratio proxy / direct: the hub's one upstream subscription
#                                   fanned out by the proxy
# REPS rounds, the systems alternating within each round; medians printed as a markdown table.
# Loopback only; every run is bounded by --hard-timeout and timeout(1).
#
#   docs/bench/pubsub.sh                 # 3 rounds
#   REPS=1 N1=20000 N100=2000 docs/bench/pubsub.sh   # a quick check
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
# PUBLISHes per run: with 1 subscriber, and with 100.
N1=${N1:-1000000}
N100=${N100:-50000}
PIPELINE=${PIPELINE:-32}
BASE=${BASE:-7520}
OUT=$(mktemp -d /tmp/pubsub-bench.XXXXXX)

for bin in redis-server redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-proxy -p autocache-loadtest
S=./target/release/autocache-shard
P=./target/release/autocache-proxy
B=./target/release/autocache-pubsub-bench

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
# :BASE+1 the shard (direct, and behind the proxy on :BASE); redis-server :BASE+9.
$S --port $((BASE + 1)) --dir "$OUT/shard" --admin-port 0 --loglevel warning >"$OUT/shard.log" 2>&1 &
PIDS+=($!)
wait_port $((BASE + 1))
$P --port "$BASE" --admin-port 0 --loglevel warning --seeds "127.0.0.1:$((BASE + 1))" >"$OUT/proxy.log" 2>&1 &
PIDS+=($!)
redis-server --port $((BASE + 9)) --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
for p in "$BASE" $((BASE + 9)); do wait_port "$p"; done
{ redis-server --version; $S --version; $P --version; git rev-parse --short HEAD; uname -r; nproc; } >"$OUT/versions.txt"

SYSTEMS="redis:$((BASE + 9)) shard:$((BASE + 1)) proxy:$BASE"
echo -e "subscribers\tsystem\trep\tdelivered_per_sec" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for subs in 1 100; do
    n=$N1
    [ "$subs" = 100 ] && n=$N100
    for sys in $SYSTEMS; do
      name=${sys%%:*}
      port=${sys##*:}
      json=$(timeout 180 $B -p "$port" --subscribers "$subs" -n "$n" --pipeline "$PIPELINE" -d 64 --hard-timeout 150)
      echo "$json" >>"$OUT/runs.jsonl"
      rate=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["delivered_per_sec"])' "$json")
      echo -e "$subs\t$name\t$rep\t$rate" >>"$OUT/runs.tsv"
      echo "round $rep: $subs subscriber(s), $name: $rate delivered/s" >&2
    done
  done
done

python3 - "$OUT/runs.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
for subs in ("1", "100"):
    for sys_ in ("redis", "shard", "proxy"):
        v = [float(r["delivered_per_sec"]) for r in rows if r["subscribers"] == subs and r["system"] == sys_]
        med[(subs, sys_)] = statistics.median(v)
print("| subscribers | redis-server | autocache-shard | shard / redis | proxy -> that shard | proxy / direct |")
print("|---|---|---|---|---|---|")
for subs in ("1", "100"):
    r, s, p = (med[(subs, x)] for x in ("redis", "shard", "proxy"))
    print(f"| {subs} | {r:,.0f}/s | {s:,.0f}/s | {s / r:.2f}x | {p:,.0f}/s | {p / s:.2f}x |")
EOF
echo "raw runs: $OUT/runs.tsv" >&2
