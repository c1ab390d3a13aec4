#!/usr/bin/env bash
# Measures autocache-shard against redis-server side by side with redis-benchmark:
# -c 50 -d 64 -r 100000, GET and SET, -P 1 and -P 16, REPS rounds alternating the two servers,
# medians and ratios printed as a markdown table. Loopback only; every run is bounded by -n.
#
#   docs/bench/shard-vs-redis.sh            # 3 rounds
#   REPS=5 docs/bench/shard-vs-redis.sh
#   TESTS=lpush,rpush,lpop,rpop,lrange_100 docs/bench/shard-vs-redis.sh   # redis-benchmark -t names
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
TESTS=${TESTS:-set,get}
N_P1=${N_P1:-200000}
N_P16=${N_P16:-2000000}
SHARD_PORT=${SHARD_PORT:-7301}
REDIS_PORT=${REDIS_PORT:-7302}
OUT=$(mktemp -d /tmp/shard-vs-redis.XXXXXX)

for bin in redis-server redis-benchmark python3; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p autocache-shard

./target/release/autocache-shard --port "$SHARD_PORT" --admin-port 0 --loglevel warning >"$OUT/shard.log" 2>&1 &
SHARD_PID=$!
redis-server --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill $SHARD_PID $REDIS_PID 2>/dev/null; wait 2>/dev/null' EXIT
for p in "$SHARD_PORT" "$REDIS_PORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
{ redis-server --version; ./target/release/autocache-shard --version; uname -r; nproc; } >"$OUT/versions.txt"

# Prefill so GETs hit (not measured).
for p in "$SHARD_PORT" "$REDIS_PORT"; do
  redis-benchmark -p "$p" -c 50 -d 64 -r 100000 -n 1000000 -P 16 -t set -q >/dev/null 2>&1
done

echo -e "system\ttest\tpipeline\trep\trps\tp50_ms\tp99_ms" >"$OUT/runs.tsv"
for rep in $(seq "$REPS"); do
  for P in 1 16; do
    n=$N_P1; [ "$P" = 16 ] && n=$N_P16
    for sys in shard redis; do
      port=$SHARD_PORT; [ "$sys" = redis ] && port=$REDIS_PORT
      timeout 120 redis-benchmark -p "$port" -c 50 -d 64 -r 100000 -n "$n" -P "$P" -t "$TESTS" --csv 2>/dev/null |
        tr -d '"' | awk -F, -v s="$sys" -v P="$P" -v r="$rep" 'NR>1 {print s"\t"$1"\t"P"\t"r"\t"$2"\t"$5"\t"$7}' >>"$OUT/runs.tsv"
    done
  done
done

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    g[(r["system"], r["test"], r["pipeline"])].append(r)
med = lambda rs, k: st.median(float(r[k]) for r in rs)
print("| test | pipeline | autocache-shard rps | redis-server rps | ratio | shard p50 / p99 ms | redis p50 / p99 ms |")
print("|---|---|---|---|---|---|---|")
tests = list(dict.fromkeys(t for (_, t, _) in g))
for t in tests:
    for P in ("1", "16"):
        a, b = g.get(("shard", t, P)), g.get(("redis", t, P))
        if not a or not b:
            continue
        ra, rb = med(a, "rps"), med(b, "rps")
        print(f"| {t} | {P} | {ra:,.0f} | {rb:,.0f} | {ra/rb:.2f}x | {med(a,'p50_ms'):.3f} / {med(a,'p99_ms'):.3f} | {med(b,'p50_ms'):.3f} / {med(b,'p99_ms'):.3f} |")
print(f"\n{len(next(iter(g.values())))} runs per cell, medians; raw runs in {sys.argv[1]}")
PY
cat "$OUT/versions.txt"
