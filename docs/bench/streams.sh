#!/usr/bin/env bash
# Streams, autocache-shard against redis-server side by side: XADD with redis-benchmark's
# custom-command mode, and the consumer-group loop (XREADGROUP COUNT 1 + XACK per entry, one
# consumer per connection) with autocache-stream-bench; -c 50, -P 1 and -P 16, REPS rounds
# alternating the two servers, medians and ratios as a markdown table. Loopback only; every
# run is bounded by -n.
#
#   docs/bench/streams.sh            # 3 rounds
#   REPS=5 docs/bench/streams.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
N_P1=${N_P1:-200000}
N_P16=${N_P16:-1000000}
GROUP_N=${GROUP_N:-200000}
SHARD_PORT=${SHARD_PORT:-7321}
REDIS_PORT=${REDIS_PORT:-7322}
OUT=$(mktemp -d /tmp/streams.XXXXXX)

for bin in redis-server redis-benchmark redis-cli python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard -p autocache-loadtest

./target/release/autocache-shard --port "$SHARD_PORT" --admin-port 0 --loglevel warning >"$OUT/shard.log" 2>&1 &
SHARD_PID=$!
redis-server --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill $SHARD_PID $REDIS_PID 2>/dev/null; wait 2>/dev/null' EXIT
for p in "$SHARD_PORT" "$REDIS_PORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

echo -e "system\ttest\tpipeline\trep\trps" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for P in 1 16; do
    n=$N_P1; [ "$P" = 16 ] && n=$N_P16
    for sys in shard redis; do
      port=$SHARD_PORT; [ "$sys" = redis ] && port=$REDIS_PORT
      redis-cli -p "$port" del bench:xadd >/dev/null
      rps=$(timeout 120 redis-benchmark -p "$port" -c 50 -n "$n" -P "$P" --csv xadd bench:xadd '*' f v 2>/dev/null |
        tr -d '"' | awk -F, 'NR>1 {print $2}')
      echo -e "$sys\tXADD\t$P\t$rep\t$rps" >>"$OUT/runs.tsv"
      redis-cli -p "$port" del bench:xadd >/dev/null
      rps=$(timeout 300 ./target/release/autocache-stream-bench -p "$port" -c 50 -n "$GROUP_N" -P "$P" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["acked_per_sec"])')
      echo -e "$sys\tXREADGROUP+XACK\t$P\t$rep\t$rps" >>"$OUT/runs.tsv"
    done
  done
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["system"], r["test"], r["pipeline"])].append(float(r["rps"]))
print("| test | pipeline | autocache-shard /s | redis-server /s | ratio |")
print("|---|---|---|---|---|")
tests = list(dict.fromkeys(t for (_, t, _) in g))
for P in ("1", "16"):
    for t in tests:
        s, r = st.median(g[("shard", t, P)]), st.median(g[("redis", t, P)])
        print(f"| {t} | {P} | {s:,.0f} | {r:,.0f} | {s / r:.2f}x |")
PY
echo "raw runs: $OUT/runs.tsv" >&2
